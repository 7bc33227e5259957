"""Event-gateway bench: HTTP produce through meshgate vs a direct client, and SSE fan-out.

Produce (same run, same broker/log, one case after the other), every record value a compact
JSON object of exactly ``--record-bytes`` (default 1024): wrk with a Lua POST script against a
``meshgate run`` process (one worker; ``--workers 1,2`` runs one gateway per count side by
side, each with its own embedded log), and as the baseline a direct client with the same acks:
confluent-kafka ``Producer`` (idempotent, acks all, linger.ms 2 like the gateway's) for Kafka,
the ``EmbeddedEventLog`` API in-process for the embedded log.

* single (one record per request) at c=1 and c=50: ``kafka-upstream`` (raw body; answers
  after the log acknowledged, acks all) and ``kafka-rest`` v3 ``.../records``; direct keeps 1
  or 50 records in flight, waiting for each ack.
* batched (``--batch`` records per request, default 100) at c=1 and c=8: ``kafka-rest`` v2
  ``POST /topics/{t}`` (``{"records": [...]}``, embedded JSON format) and v3 streamed
  (``--batch`` record objects concatenated in one ``.../records`` body); direct produces the
  same number of records as one batch (``produce`` calls then waits for all their deliveries;
  one ``EventLog.produce`` of the list) with 1 or 8 batches in flight. Records/s counts
  records; p50/p99 are per request (per batch for direct).
* ``direct ... unbounded`` (Kafka only): the producer's best case, records never waited for.

The run's Kafka topics are deleted at the end (each run writes gigabytes).

Ratios are gateway / direct at the same concurrency and batch size. ``gw CPU us/req`` is the
gateway process's user + system CPU time over the run divided by its requests: on a shared
machine a steadier figure than requests/s.

SSE fan-out (``--sse N``): N SSE clients (raw asyncio sockets in two client processes) on one
gateway process's ``kafka-consume`` route, then M records produced one by one; delivery
latency is record POSTed → each client has it; RSS per connection from /proc.

Usage: ``.venv/bin/python bench/events_bench.py [--duration 5] [--record-bytes 1024]
[--batch 100] [--sse 10000] [--no-kafka] [--plan batched-8] [--rounds 3] [--compare-src
/tmp/wt-base/src]`` (A/B: ``--compare-src`` runs a second gateway from another checkout, cases
interleaved; Kafka: ``MESHGATE_TEST_KAFKA_BOOTSTRAP`` or
``--bootstrap``; ``bash scripts/services/up.sh``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
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
RECORD_BYTES = 1024
RESULTS_DIR = REPO / "bench" / "results"


def record_object(size: int) -> dict[str, Any]:
    """A JSON object whose compact text (as the gateway stores it) is exactly ``size`` bytes."""
    doc: dict[str, Any] = {"order": 12345, "item": "widget", "note": ""}
    doc["note"] = "x" * max(0, size - len(compact(doc)))
    if len(compact(doc)) != size:
        raise ValueError(f"record size {size} is below the minimum {len(compact(doc))}")
    return doc


def compact(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


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
    """``meshgate run -c <yaml>`` with ``workers`` workers, access log off; stopped by PID."""

    def __init__(self, config_yaml: str, workdir: Path, workers: int = 1,
                 source: str | None = None) -> None:  # fmt: skip
        """``source``: a ``src`` directory to run instead of the installed meshgate (an A/B
        comparison with another checkout), on PYTHONPATH."""
        self.workers = workers
        self.source = source
        self.port = free_port()
        config = workdir / f"gateway-{self.port}.yaml"
        config.write_text(config_yaml)
        self.log_path = workdir / f"gateway-{self.port}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "meshgate.cli.main", "run", "-c", str(config),
             "--proxy-listen", f"127.0.0.1:{self.port}", "--workers", str(workers),
             "--access-log", "off", "--admin-listen", "off", "--log-level", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir,
            env={**os.environ, "MESHGATE_RUNTIME_DIR": str(workdir / f"runtime-{self.port}"),
                 **({"PYTHONPATH": source} if source else {})},
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

    def cpu_seconds(self) -> float:
        """User + system CPU time of the gateway process and its workers so far."""
        ticks = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
            except FileNotFoundError:
                pass
        return ticks / os.sysconf("SC_CLK_TCK")

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
    batch: int = 1
    cpu_us: float | None = None  # gateway CPU (user + sys) per request
    round: int = 0


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def from_latencies(name: str, backend: str, conc: int | str, latencies: list[float],
                   elapsed: float, errors: int = 0, batch: int = 1) -> Result:  # fmt: skip
    """``latencies``: one per completed batch (of ``batch`` records)."""
    ordered = sorted(latencies)
    return Result(name, backend, conc, len(latencies) * batch / elapsed,
                  percentile(ordered, 0.5) * 1000, percentile(ordered, 0.99) * 1000, errors,
                  batch)  # fmt: skip


# ------------------------------------------------------------------ HTTP via wrk


JSON = "application/json"
JSON_V2 = "application/vnd.kafka.json.v2+json"


def wrk_post(url: str, body: str, content_type: str, connections: int, duration: int,
             workdir: Path) -> Any:  # fmt: skip
    script = workdir / f"post-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script),
            url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    return parse_wrk_output(done.stdout)


def warm_up(url: str, body: str, content_type: str, requests: int = 20) -> None:
    """A few produces first: topic creation, producer start and first metadata stay out of
    the measured run."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        for _ in range(requests):
            conn.request("POST", parts.path, body=body.encode(),
                         headers={"Content-Type": content_type})  # fmt: skip
            res = conn.getresponse()
            res.read()
            if res.status >= 300:
                raise RuntimeError(f"warm-up POST {url} answered {res.status}")
    finally:
        conn.close()


@dataclass(frozen=True)
class HttpCase:
    name: str
    path: str  # after /<backend>
    body: str
    content_type: str
    batch: int


def http_case_set(topic: str, record_bytes: int, batch: int) -> dict[str, list[HttpCase]]:
    """The single-record and the batched HTTP cases for one backend."""
    value = record_object(record_bytes)
    v3_one = compact({"value": {"type": "JSON", "data": value}})
    v3_path = f"/rest/v3/clusters/meshgate/topics/{topic}/records"
    v2_body = compact({"records": [{"value": value}] * batch})
    return {
        "single": [
            HttpCase("gateway kafka-upstream", "/up", compact(value), JSON, 1),
            HttpCase("gateway kafka-rest v3", v3_path, v3_one, JSON, 1),
        ],
        "batched": [
            HttpCase("gateway kafka-rest v2 batch", f"/rest/topics/{topic}", v2_body, JSON_V2,
                     batch),
            HttpCase("gateway kafka-rest v3 streamed", v3_path, "\n".join([v3_one] * batch),
                     JSON, batch),
        ],
    }  # fmt: skip


def http_cases(gw: GatewayProcess, backend: str, cases: list[HttpCase], concurrency: int,
               duration: int, workdir: Path) -> list[Result]:  # fmt: skip
    base = f"http://127.0.0.1:{gw.port}/{backend}"
    tag = ("" if gw.workers == 1 else f" ({gw.workers} workers)") + (" [compare]" if gw.source
                                                                     else "")  # fmt: skip
    out = []
    for case in cases:
        warm_up(base + case.path, case.body, case.content_type, 3 if case.batch > 1 else 20)
    for case in cases:
        cpu_before = gw.cpu_seconds()
        wrk = wrk_post(base + case.path, case.body, case.content_type, concurrency, duration,
                       workdir)  # fmt: skip
        requests = wrk.rps * duration
        cpu_us = (gw.cpu_seconds() - cpu_before) / requests * 1e6 if requests else None
        out.append(Result(case.name + tag, backend, concurrency, wrk.rps * case.batch,
                          wrk.p50_us / 1000, wrk.p99_us / 1000, wrk.non_2xx + wrk.socket_errors,
                          case.batch, cpu_us))  # fmt: skip
    return out


# ------------------------------------------------------------------ direct clients


def direct_kafka(bootstrap: str, topic: str, value: bytes, window: int | None,
                 duration: float, batch: int = 1) -> Result:  # fmt: skip
    """``window`` batches of ``batch`` records in flight (1: wait for each batch before the
    next); a batch completes when all its records are delivered. None: unbounded, no waiting."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "linger.ms": 2})  # fmt: skip
    producer.produce(topic, value)
    producer.flush(10)
    latencies: list[float] = []
    errors = [0]
    inflight = [0]

    def batch_callback(started: float) -> Any:
        pending = [batch]

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                errors[0] += 1
            pending[0] -= 1
            if pending[0] == 0:
                inflight[0] -= 1
                latencies.append(time.perf_counter() - started)

        return on_delivery

    def produce_one(callback: Any) -> None:
        while True:
            try:
                producer.produce(topic, value, on_delivery=callback)
                return
            except BufferError:
                producer.poll(0.001)

    started_all = time.perf_counter()
    end = started_all + duration
    while time.perf_counter() < end:
        if window is not None and inflight[0] >= window:
            producer.poll(0.0005 if window > 1 else 0.01)
            continue
        callback = batch_callback(time.perf_counter())
        inflight[0] += 1
        for _ in range(batch):
            produce_one(callback)
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - started_all
    conc: int | str = "unbounded" if window is None else window
    name = f"direct confluent-kafka {conc}" + ("" if window is None else f" x {batch}")
    return from_latencies(name, "kafka", conc, latencies, elapsed, errors[0], batch)


async def _direct_embedded(root: Path, topic: str, value: bytes, window: int,
                           duration: float, batch: int) -> Result:  # fmt: skip
    from meshgate.events import ProduceRecord, open_event_log

    log = await open_event_log(str(root), auto_create_topics=True)
    try:
        record = [ProduceRecord(key=None, value=value)] * batch
        await log.produce(topic, record[:1])
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
    return from_latencies(f"direct EmbeddedEventLog {window} x {batch}", "embedded", window,
                          latencies, elapsed, 0, batch)  # fmt: skip


def direct_embedded(root: Path, topic: str, value: bytes, window: int, duration: float,
                    batch: int = 1) -> Result:  # fmt: skip
    import uvloop

    return uvloop.run(_direct_embedded(root, topic, value, window, duration, batch))


# ------------------------------------------------------------------ report


def print_table(results: list[Result]) -> None:
    print(f"{'case':42} {'backend':9} {'conc':>9} {'batch':>5} {'rec/s':>9} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'err':>5} {'gw CPU us/req':>13}")  # fmt: skip
    for r in results:
        p50 = f"{r.p50_ms:8.2f}" if r.p50_ms is not None else "       -"
        p99 = f"{r.p99_ms:8.2f}" if r.p99_ms is not None else "       -"
        cpu = f"{r.cpu_us:13.0f}" if r.cpu_us is not None else f"{'-':>13}"
        print(f"{r.name:42} {r.backend:9} {r.concurrency!s:>9} {r.batch:5} "
              f"{r.records_per_s:9.0f} {p50} {p99} {r.errors:5} {cpu}")  # fmt: skip


def print_ratios(results: list[Result]) -> list[dict[str, Any]]:
    rows = []
    print(
        "\nratios gateway / direct at the same concurrency and batch"
        " (rec/s: <1 slower; latency: >1 slower)"
    )
    for gateway in (r for r in results if r.name.startswith("gateway")):
        direct = next((r for r in results if r.name.startswith("direct")
                       and r.backend == gateway.backend
                       and r.concurrency == gateway.concurrency
                       and r.batch == gateway.batch and r.round == gateway.round), None)  # fmt: skip
        if direct is None or not direct.records_per_s:
            continue
        row = {"case": gateway.name, "backend": gateway.backend, "c": gateway.concurrency,
               "batch": gateway.batch, "round": gateway.round,
               "throughput": gateway.records_per_s / direct.records_per_s,
               "p50": (gateway.p50_ms or 0) / (direct.p50_ms or 1),
               "p99": (gateway.p99_ms or 0) / (direct.p99_ms or 1)}  # fmt: skip
        rows.append(row)
        print(f"  {gateway.name:42} {gateway.backend:9} c={gateway.concurrency!s:3} "
              f"b={gateway.batch:<4} r{gateway.round} "
              f"throughput x{row['throughput']:.2f}  p50 x{row['p50']:.2f}  "
              f"p99 x{row['p99']:.2f}")  # fmt: skip
    if any(row["round"] for row in rows):
        print("\nmedian over rounds (throughput ratio)")
        cases: dict[tuple[str, str, Any, int], list[float]] = {}
        for row in rows:
            key = (row["case"], row["backend"], row["c"], row["batch"])
            cases.setdefault(key, []).append(row["throughput"])
        for (case, backend, conc, batch), values in cases.items():
            print(f"  {case:42} {backend:9} c={conc!s:3} b={batch:<4} "
                  f"x{statistics.median(values):.2f}  ({' '.join(f'{v:.2f}' for v in values)})")  # fmt: skip
    return rows


def produce_bench(options: argparse.Namespace, workdir: Path) -> list[Result]:
    run_id = uuid.uuid4().hex[:8]
    backends = ["embedded"] + ([] if options.bootstrap is None else ["kafka"])
    topics = {b: f"bench-{b}-{run_id}" for b in backends}
    value = compact(record_object(options.record_bytes)).encode()
    plan = [(kind, concurrency, batch) for kind, concurrency, batch in
            (("single", 1, 1), ("single", 50, 1), ("batched", 1, options.batch),
             ("batched", 8, options.batch))
            if options.plan is None or f"{kind}-{concurrency}" in options.plan]  # fmt: skip
    results: list[Result] = []
    gateways: list[GatewayProcess] = []
    try:
        for workers in options.workers:  # each gateway its own embedded log
            log_dir = workdir / f"gateway-log-{workers}"
            commons = {b: backend_config(b, log_dir, options.bootstrap) for b in backends}
            gateways.append(GatewayProcess(produce_gateway_yaml(commons, topics), workdir,
                                           workers))  # fmt: skip
            if options.compare_src:
                log_dir = workdir / f"gateway-log-{workers}-compare"
                commons = {b: backend_config(b, log_dir, options.bootstrap) for b in backends}
                gateways.append(GatewayProcess(produce_gateway_yaml(commons, topics), workdir,
                                               workers, options.compare_src))  # fmt: skip
        for round_number in range(options.rounds):
            for backend in backends:
                cases = http_case_set(topics[backend], options.record_bytes, options.batch)
                for kind, concurrency, batch in plan:
                    print(f"... {backend} {kind} c={concurrency} round {round_number}",
                          file=sys.stderr, flush=True)  # fmt: skip
                    order = gateways if round_number % 2 == 0 else gateways[::-1]
                    measured = []
                    for gw in order:
                        measured += http_cases(gw, backend, cases[kind], concurrency,
                                               options.duration, workdir)  # fmt: skip
                    if backend == "kafka":
                        measured.append(direct_kafka(
                            options.bootstrap, topics[backend] + "-direct", value, concurrency,
                            options.duration, batch))  # fmt: skip
                    else:
                        measured.append(direct_embedded(
                            workdir / "direct-log", topics[backend], value, concurrency,
                            options.duration, batch))  # fmt: skip
                    for result in measured:
                        result.round = round_number
                    results += measured
        if "kafka" in backends and options.plan is None:
            results.append(direct_kafka(options.bootstrap, topics["kafka"] + "-direct", value,
                                        None, options.duration))  # fmt: skip
    finally:
        for gw in gateways:
            gw.stop()
        if options.bootstrap is not None:
            delete_topics(options.bootstrap, [topics["kafka"], topics["kafka"] + "-direct"])
    return results


def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Drop the run's topics: every run writes gigabytes, and the test broker keeps them."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, done in admin.delete_topics(names, operation_timeout=30).items():
        try:
            done.result(60)
        except Exception as exc:  # a topic never made is fine; report the rest
            if "UNKNOWN_TOPIC" not in str(exc):
                print(f"could not delete topic {name}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per produce case")
    parser.add_argument("--record-bytes", type=int, default=RECORD_BYTES,
                        help="record value size (compact JSON)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=100, help="records per batched request")
    parser.add_argument("--bootstrap", default=os.environ.get("MESHGATE_TEST_KAFKA_BOOTSTRAP"))
    parser.add_argument("--workers", type=lambda text: [int(n) for n in text.split(",")],
                        default=[1], help="gateway worker counts to run side by side: 1,2")  # fmt: skip
    parser.add_argument("--no-kafka", action="store_true", help="embedded log only")
    parser.add_argument("--no-produce", action="store_true", help="skip the produce cases")
    parser.add_argument("--sse", type=int, default=10_000, help="SSE clients (0: skip)")
    parser.add_argument("--sse-records", type=int, default=20, help="records sent to them")
    parser.add_argument("--sse-backend", choices=["embedded", "kafka"], default="embedded")
    parser.add_argument("--plan", type=lambda text: text.split(","), default=None,
                        help="produce cases to run: single-1,single-50,batched-1,batched-8")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the produce cases; ratios per round and their median")  # fmt: skip
    parser.add_argument("--compare-src", default=None,
                        help="also run a gateway from this src directory (PYTHONPATH), "
                             "measured interleaved with the installed one: A/B")  # fmt: skip
    options = parser.parse_args(argv)
    if options.no_kafka:
        options.bootstrap = None
    if shutil.which("wrk") is None and not options.no_produce:
        parser.error("wrk is not installed (bash bench/install.sh)")
    fd_limit = raise_fd_limit()
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, fd limit {fd_limit}")
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()[0],
                              "record_bytes": options.record_bytes, "batch": options.batch}  # fmt: skip
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
