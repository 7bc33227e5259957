"""SSE fan-out part of events_bench.py: N clients on one gateway, then M records.

Clients are raw asyncio protocols in two spawned processes (uvloop), each keeping for every
record seq the monotonic time it first saw ``"seq":<n>`` in its stream (CLOCK_MONOTONIC is
system-wide, so times compare across processes). The parent POSTs record n (body
``{"seq": n}``) at t0[n] through the gateway's kafka-upstream route and afterwards collects the
receive times: delivery latency = receive - t0 over every (client, record) pair, and the time
until the last client had each record. Gateway RSS is read from /proc before and after the
clients connected.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import re
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from events_bench import GatewayProcess, backend_config, percentile, raise_fd_limit

SEQ = re.compile(rb'"seq":\s*(\d+)[,}]')
CLIENT_PROCESSES = 2
CONNECT_BATCH = 250
SEND_INTERVAL_S = 2.0


class SseClient(asyncio.Protocol):
    """One SSE connection: notes when each record seq first arrives."""

    __slots__ = ("got", "head", "lost", "ready", "request", "tail", "transport")

    def __init__(self, request: bytes, ready: asyncio.Future[bool]) -> None:
        self.request = request
        self.head = b""
        self.got: dict[int, float] = {}
        self.tail = b""
        self.ready = ready
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if not self.ready.done():
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.ready.set_result(self.head.startswith(b"HTTP/1.1 200"))
            data = self.head.partition(b"\r\n\r\n")[2]
        text = self.tail + data
        for match in SEQ.finditer(text):
            seq = int(match.group(1))
            if seq not in self.got:
                self.got[seq] = now
        self.tail = text[-32:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_result(False)


async def _clients(pipe: Connection, port: int, path: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()
    clients: list[SseClient] = []
    failed = 0
    for start in range(0, count, CONNECT_BATCH):
        batch = []
        for _ in range(min(CONNECT_BATCH, count - start)):
            ready: asyncio.Future[bool] = loop.create_future()
            client = SseClient(request, ready)
            batch.append(client)
        results = await asyncio.gather(
            *(loop.create_connection(lambda c=c: c, "127.0.0.1", port) for c in batch),
            return_exceptions=True,
        )
        for client, result in zip(batch, results, strict=True):
            if isinstance(result, BaseException):
                failed += 1
                client.ready.cancel()
            else:
                clients.append(client)
        oks = await asyncio.gather(*(c.ready for c in batch if not c.ready.cancelled()))
        failed += sum(1 for ok in oks if not ok)
    pipe.send(("ready", len(clients), failed))
    await loop.run_in_executor(None, pipe.recv)  # "report"
    received: dict[int, list[float]] = {}
    for client in clients:
        for seq, at in client.got.items():
            received.setdefault(seq, []).append(at)
    lost = sum(1 for c in clients if c.lost)
    pipe.send(("report", received, lost))
    for client in clients:
        client.transport.close()


def client_main(pipe: Connection, port: int, path: str, count: int) -> None:
    import uvloop

    raise_fd_limit()
    uvloop.run(_clients(pipe, port, path, count))


def _gateway_yaml(common: dict[str, Any], topic: str) -> str:
    routes = [
        {"name": "produce", "paths": ["/produce"], "plugins": [{"name": "kafka-upstream",
         "config": {**common, "topic": topic, "message_format": "raw",
                    "producer_request_timeout": 60000}}]},
        {"name": "live", "paths": ["/live"], "plugins": [{"name": "kafka-consume",
         "config": {**common, "topics": [{"name": topic}], "mode": "server-sent-events",
                    "auto_offset_reset": "latest"}}]},
    ]  # fmt: skip
    return json.dumps({"_format_version": "3.0", "routes": routes})


def _post(port: int, body: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/produce", body=body, headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        res.read()
        if res.status >= 300:
            raise RuntimeError(f"produce answered {res.status}")
    finally:
        conn.close()


def sse_bench(options: Any, workdir: Path, fd_limit: int) -> dict[str, Any]:
    wanted = options.sse
    # the gateway needs one fd per client plus its own; each client process one per client
    usable = fd_limit - 200
    clients = min(wanted, usable)
    if clients < wanted:
        print(f"SSE: {wanted} clients wanted, fd limit {fd_limit} allows {clients}")
    topic = f"bench-sse-{int(time.time())}"
    common = backend_config(options.sse_backend, workdir / "sse-log", options.bootstrap)
    gw = GatewayProcess(_gateway_yaml(common, topic), workdir)
    context = multiprocessing.get_context("spawn")
    procs: list[Any] = []
    pipes: list[Connection] = []
    try:
        _post(gw.port, b'{"seq": -1}')  # creates the topic
        time.sleep(0.5)
        rss_before = gw.rss_bytes()
        share = [clients // CLIENT_PROCESSES + (i < clients % CLIENT_PROCESSES)
                 for i in range(CLIENT_PROCESSES)]  # fmt: skip
        started = time.monotonic()
        for count in share:
            parent_end, child_end = context.Pipe()
            proc = context.Process(target=client_main, args=(child_end, gw.port, "/live", count))
            proc.start()
            procs.append(proc)
            pipes.append(parent_end)
        connected = failed = 0
        for pipe in pipes:
            if not pipe.poll(600):
                raise RuntimeError("SSE clients did not connect within 600 s")
            _, ok, bad = pipe.recv()
            connected += ok
            failed += bad
        connect_s = time.monotonic() - started
        time.sleep(1.0)
        rss_after = gw.rss_bytes()
        print(f"SSE: {connected} clients connected ({failed} failed) in {connect_s:.1f}s; "
              f"gateway RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB")  # fmt: skip
        sent_at: dict[int, float] = {}
        for seq in range(options.sse_records):
            sent_at[seq] = time.monotonic()
            _post(gw.port, json.dumps({"seq": seq}).encode())
            time.sleep(SEND_INTERVAL_S)
        time.sleep(5.0)
        rss_end = gw.rss_bytes()
        received: dict[int, list[float]] = {}
        lost = 0
        for pipe in pipes:
            pipe.send("report")
        for pipe in pipes:
            if not pipe.poll(120):
                raise RuntimeError("SSE clients did not report")
            _, part, part_lost = pipe.recv()
            lost += part_lost
            for seq, times in part.items():
                received.setdefault(seq, []).extend(times)
    finally:
        for proc in procs:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
        gw.stop()
    return _summarise(connected, failed, lost, connect_s, rss_before, rss_after, rss_end,
                      sent_at, received)  # fmt: skip


def _summarise(connected: int, failed: int, lost: int, connect_s: float, rss_before: int,
               rss_after: int, rss_end: int, sent_at: dict[int, float],
               received: dict[int, list[float]]) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    completion: list[float] = []
    delivered = 0
    for seq, t0 in sent_at.items():
        times = received.get(seq, [])
        delivered += len(times)
        latencies += [t - t0 for t in times]
        if len(times) == connected and times:
            completion.append(max(times) - t0)
    latencies.sort()
    completion.sort()
    expected = connected * len(sent_at)
    per_conn = (rss_after - rss_before) / connected if connected else float("nan")
    summary = {
        "clients": connected, "connect_failed": failed, "lost_during_run": lost,
        "connect_seconds": connect_s, "records": len(sent_at),
        "delivered": delivered, "expected": expected,
        "latency_ms": {"p50": percentile(latencies, 0.5) * 1000,
                       "p99": percentile(latencies, 0.99) * 1000,
                       "max": (latencies[-1] * 1000) if latencies else float("nan")},
        "all_clients_had_it_ms": {"p50": percentile(completion, 0.5) * 1000,
                                  "max": (completion[-1] * 1000) if completion else float("nan"),
                                  "records_complete": len(completion)},
        "gateway_rss_mib": {"before": rss_before / 2**20, "connected": rss_after / 2**20,
                            "end": rss_end / 2**20},
        "rss_per_connection_kib": per_conn / 1024,
    }  # fmt: skip
    lat = summary["latency_ms"]
    done = summary["all_clients_had_it_ms"]
    print(f"SSE: {delivered}/{expected} deliveries; latency produce->client p50 "
          f"{lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms; "
          f"all {connected} clients had a record after p50 {done['p50']:.1f} ms, max "
          f"{done['max']:.1f} ms ({done['records_complete']}/{len(sent_at)} records reached "
          f"everyone); gateway RSS {per_conn / 1024:.1f} KiB per connection")  # fmt: skip
    return summary
