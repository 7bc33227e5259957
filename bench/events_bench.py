"""Event-gateway bench: HTTP produce through meshgate vs a direct client, and SSE fan-out.

Produce (same run, same broker/log, one case after the other): wrk with a Lua POST script
against a ``meshgate run`` process (one worker) — ``kafka-upstream`` (answers after the log
acknowledged, acks all) and ``kafka-rest`` v3 records — and, as the baseline, a direct client
with the same acks: confluent-kafka ``Producer`` (idempotent, acks all, linger.ms 2 like the
gateway's) for Kafka, the ``EmbeddedEventLog`` API in-process for the embedded log. Direct at
c=1 is one record at a time waiting for each ack; at c=50 it keeps 50 records in flight (the
same concurrency the HTTP clients have); ``batched`` is the producer's best case (no
waiting). Ratios are gateway / direct at the same concurrency.

SSE fan-out (``--sse N``): N SSE clients (raw asyncio sockets in two client processes) on one
gateway process's ``kafka-consume`` route, then M records produced one by one; delivery
latency is record POSTed → each client has it; RSS per connection from /proc.

Usage: ``.venv/bin/python bench/events_bench.py [--duration 5] [--sse 10000] [--no-kafka]``
(Kafka: ``MESHGATE_TEST_KAFKA_BOOTSTRAP`` or ``--bootstrap``; ``bash scripts/services/up.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_wrk import parse_wrk_output

REPO = Path(__file__).resolve().parents[1]
PYTHON = str(REPO / ".venv" / "bin" / "python")
PAYLOAD = json.dumps({"order": 12345, "item": "widget", "note": "x" * 64})
RESULTS_DIR = REPO / "bench" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class GatewayProcess:
    """``meshgate run -c <yaml>`` with one worker, access log off; stopped by PID."""

    def __init__(self, config_yaml: str, workdir: Path) -> None:
        self.port = free_port()
        config = workdir / f"gateway-{self.port}.yaml"
        config.write_text(config_yaml)
        self.log_path = workdir / f"gateway-{self.port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "meshgate.cli.main", "run", "-c", str(config),
             "--proxy-listen", f"127.0.0.1:{self.port}", "--workers", "1",
             "--access-log", "off", "--admin-listen", "off", "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir,
            env={**os.environ, "MESHGATE_RUNTIME_DIR": str(workdir / "runtime")},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-3000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("gateway did not listen within 30 s")

    def pids(self) -> list[int]:
        """The gateway process and its descendants (workers)."""
        found = [self.proc.pid]
        index = 0
        while index < len(found):
            children = Path(f"/proc/{found[index]}/task/{found[index]}/children")
            if children.exists():
                found += [int(p) for p in children.read_text().split()]
            index += 1
        return found

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except FileNotFoundError:
                pass
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def backend_config(backend: str, embedded_dir: Path, bootstrap: str | None) -> dict[str, Any]:
    if backend == "embedded":
        return {"embedded": {"path": str(embedded_dir)}, "auto_create_topic": True}
    assert bootstrap is not None
    host, _, port = bootstrap.rpartition(":")
    return {"backend": "kafka", "bootstrap_servers": [{"host": host, "port": int(port)}],
            "auto_create_topic": True}  # fmt: skip


def produce_gateway_yaml(backends: dict[str, dict[str, Any]], topics: dict[str, str]) -> str:
    routes = []
    for backend, common in backends.items():
        upstream = {**common, "topic": topics[backend], "message_format": "raw",
                    "producer_request_acks": -1, "producer_request_timeout": 10000}  # fmt: skip
        routes.append({"name": f"{backend}-upstream", "paths": [f"/{backend}/up"],
                       "plugins": [{"name": "kafka-upstream", "config": upstream}]})  # fmt: skip
        rest = {**common, "producer_request_acks": -1}
        routes.append({"name": f"{backend}-rest", "paths": [f"/{backend}/rest"],
                       "plugins": [{"name": "kafka-rest", "config": rest}]})  # fmt: skip
    return json.dumps({"_format_version": "3.0", "routes": routes})


# ------------------------------------------------------------------ results


@dataclass
class Result:
    name: str
    backend: str
    concurrency: int | str
    records_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int = 0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def from_latencies(name: str, backend: str, conc: int | str, latencies: list[float],
                   elapsed: float, errors: int = 0) -> Result:  # fmt: skip
    ordered = sorted(latencies)
    return Result(name, backend, conc, len(latencies) / elapsed,
                  percentile(ordered, 0.5) * 1000, percentile(ordered, 0.99) * 1000, errors)  # fmt: skip


# ------------------------------------------------------------------ HTTP via wrk


def wrk_post(url: str, body: str, connections: int, duration: int, workdir: Path) -> Any:
    script = workdir / f"post-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
            url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    return parse_wrk_output(done.stdout)


def warm_up(url: str, body: str, requests: int = 20) -> None:
    """A few produces first: topic creation, producer start and first metadata stay out of
    the measured run."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        for _ in range(requests):
            conn.request("POST", parts.path, body=body.encode(),
                         headers={"Content-Type": "application/json"})  # fmt: skip
            res = conn.getresponse()
            res.read()
            if res.status >= 300:
                raise RuntimeError(f"warm-up POST {url} answered {res.status}")
    finally:
        conn.close()


def http_cases(gw: GatewayProcess, backend: str, topic: str, concurrency: int, duration: int,
               workdir: Path) -> list[Result]:  # fmt: skip
    base = f"http://127.0.0.1:{gw.port}/{backend}"
    rest_body = json.dumps({"value": {"type": "JSON", "data": json.loads(PAYLOAD)}})
    out = []
    cases = (
        ("gateway kafka-upstream", f"{base}/up", PAYLOAD),
        ("gateway kafka-rest v3", f"{base}/rest/v3/clusters/meshgate/topics/{topic}/records",
         rest_body),
    )  # fmt: skip
    for _, url, body in cases:
        warm_up(url, body)
    for name, url, body in cases:
        wrk = wrk_post(url, body, concurrency, duration, workdir)
        out.append(Result(name, backend, concurrency, wrk.rps, wrk.p50_us / 1000,
                          wrk.p99_us / 1000, wrk.non_2xx + wrk.socket_errors))  # fmt: skip
    return out


# ------------------------------------------------------------------ direct clients


def direct_kafka(bootstrap: str, topic: str, window: int | None, duration: float) -> Result:
    """``window`` records in flight (1: wait for each); None: batched, no waiting."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2})  # fmt: skip
    producer.produce(topic, PAYLOAD.encode())
    producer.flush(10)
    latencies: list[float] = []
    errors = [0]
    inflight = [0]

    def report(started: float) -> Any:
        def on_delivery(error: Any, _message: Any) -> None:
            inflight[0] -= 1
            if error is not None:
                errors[0] += 1
            else:
                latencies.append(time.perf_counter() - started)

        return on_delivery

    value = PAYLOAD.encode()
    started_all = time.perf_counter()
    end = started_all + duration
    while time.perf_counter() < end:
        if window is not None and inflight[0] >= window:
            producer.poll(0.0005 if window > 1 else 0.01)
            continue
        try:
            producer.produce(topic, value, on_delivery=report(time.perf_counter()))
            inflight[0] += 1
        except BufferError:
            producer.poll(0.001)
            continue
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - started_all
    name = "direct confluent-kafka " + ("batched" if window is None else f"window {window}")
    conc: int | str = "batched" if window is None else window
    return from_latencies(name, "kafka", conc, latencies, elapsed, errors[0])


async def _direct_embedded(root: Path, topic: str, window: int, duration: float) -> Result:
    from meshgate.events import ProduceRecord, open_event_log

    log = await open_event_log(str(root), auto_create_topics=True)
    try:
        record = [ProduceRecord(key=None, value=PAYLOAD.encode())]
        await log.produce(topic, record)
        latencies: list[float] = []
        end = time.perf_counter() + duration

        async def one_client() -> None:
            while time.perf_counter() < end:
                started = time.perf_counter()
                await log.produce(topic, record, acks="all")
                latencies.append(time.perf_counter() - started)

        started_all = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(window)))
        elapsed = time.perf_counter() - started_all
    finally:
        await log.close()
    return from_latencies(f"direct EmbeddedEventLog {window} tasks", "embedded", window,
                          latencies, elapsed)  # fmt: skip


def direct_embedded(root: Path, topic: str, window: int, duration: float) -> Result:
    import uvloop

    return uvloop.run(_direct_embedded(root, topic, window, duration))


# ------------------------------------------------------------------ report


def print_table(results: list[Result]) -> None:
    print(f"{'case':42} {'backend':9} {'conc':>8} {'rec/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'err':>5}")  # fmt: skip
    for r in results:
        p50 = f"{r.p50_ms:8.2f}" if r.p50_ms is not None else "       -"
        p99 = f"{r.p99_ms:8.2f}" if r.p99_ms is not None else "       -"
        print(f"{r.name:42} {r.backend:9} {r.concurrency!s:>8} {r.records_per_s:9.0f} {p50} "
              f"{p99} {r.errors:5}")  # fmt: skip


def print_ratios(results: list[Result]) -> list[dict[str, Any]]:
    rows = []
    print(
        "\nratios gateway / direct at the same concurrency (rec/s: <1 slower; latency: >1 slower)"
    )
    for gateway in (r for r in results if r.name.startswith("gateway")):
        direct = next((r for r in results if r.name.startswith("direct")
                       and r.backend == gateway.backend
                       and r.concurrency == gateway.concurrency), None)  # fmt: skip
        if direct is None or not direct.records_per_s:
            continue
        row = {"case": gateway.name, "backend": gateway.backend, "c": gateway.concurrency,
               "throughput": gateway.records_per_s / direct.records_per_s,
               "p50": (gateway.p50_ms or 0) / (direct.p50_ms or 1),
               "p99": (gateway.p99_ms or 0) / (direct.p99_ms or 1)}  # fmt: skip
        rows.append(row)
        print(f"  {gateway.name:26} {gateway.backend:9} c={gateway.concurrency!s:3} "
              f"throughput x{row['throughput']:.2f}  p50 x{row['p50']:.2f}  "
              f"p99 x{row['p99']:.2f}")  # fmt: skip
    return rows


def produce_bench(options: argparse.Namespace, workdir: Path) -> list[Result]:
    run_id = uuid.uuid4().hex[:8]
    backends = ["embedded"] + ([] if options.bootstrap is None else ["kafka"])
    topics = {b: f"bench-{b}-{run_id}" for b in backends}
    gateway_dir = workdir / "gateway-log"
    commons = {b: backend_config(b, gateway_dir, options.bootstrap) for b in backends}
    results: list[Result] = []
    gw = GatewayProcess(produce_gateway_yaml(commons, topics), workdir)
    try:
        for backend in backends:
            for concurrency in (1, 50):
                print(f"... {backend} c={concurrency}", file=sys.stderr, flush=True)
                results += http_cases(gw, backend, topics[backend], concurrency,
                                      options.duration, workdir)  # fmt: skip
                if backend == "kafka":
                    results.append(direct_kafka(options.bootstrap, topics[backend] + "-direct",
                                                concurrency, options.duration))  # fmt: skip
                else:
                    results.append(direct_embedded(workdir / "direct-log", topics[backend],
                                                   concurrency, options.duration))  # fmt: skip
        if "kafka" in backends:
            results.append(direct_kafka(options.bootstrap, topics["kafka"] + "-direct", None,
                                        options.duration))  # fmt: skip
    finally:
        gw.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per produce case")
    parser.add_argument("--bootstrap", default=os.environ.get("MESHGATE_TEST_KAFKA_BOOTSTRAP"))
    parser.add_argument("--no-kafka", action="store_true", help="embedded log only")
    parser.add_argument("--no-produce", action="store_true", help="skip the produce cases")
    parser.add_argument("--sse", type=int, default=10_000, help="SSE clients (0: skip)")
    parser.add_argument("--sse-records", type=int, default=20, help="records sent to them")
    parser.add_argument("--sse-backend", choices=["embedded", "kafka"], default="embedded")
    options = parser.parse_args(argv)
    if options.no_kafka:
        options.bootstrap = None
    if shutil.which("wrk") is None and not options.no_produce:
        parser.error("wrk is not installed (bash bench/install.sh)")
    fd_limit = raise_fd_limit()
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, fd limit {fd_limit}")
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="events-bench-") as tmp:
        workdir = Path(tmp)
        if not options.no_produce:
            results = produce_bench(options, workdir)
            print()
            print_table(results)
            report["produce"] = [r.__dict__ for r in results]
            report["ratios"] = print_ratios(results)
        if options.sse:
            from events_bench_sse import sse_bench

            report["sse"] = sse_bench(options, workdir, fd_limit)
    report["load_at_end"] = os.getloadavg()[0]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"events-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
