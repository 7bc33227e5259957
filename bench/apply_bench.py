"""Live-apply bench: Admin API write latency at 10, 1,000 and 10,000 routes while wrk runs.

For each worker count (``--workers 1,2``) and each size N: start an nginx upstream and ``meshgate run --store sqlite:///…`` with the Admin
API on, load N routes with ``POST /config`` (timed), start wrk on one route, PATCH the paths of
another route K times (each round trip timed: the node answers a write only once every proxy
worker runs it, so the round trip is the apply latency an operator sees), stop wrk, check that
the last change is served, and report apply p50/p99/max plus wrk's errors during the series.
Run ``.venv/bin/python bench/apply_bench.py --help``; bench/README.md explains the output.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness_configs as configs
import harness_systems as systems
from harness_procs import Server, StartError, Supervisor, free_port, http_get
from harness_wrk import WrkError, parse_wrk_output
from run import RESULTS_DIR, log, pin_prefixes

DEFAULT_SIZES = "10,1000,10000"
DEFAULT_WORKERS = "1,2"


@dataclass(frozen=True)
class SizeResult:
    workers: int
    routes: int
    load_s: float
    applies: int
    apply_p50_ms: float
    apply_p99_ms: float
    apply_max_ms: float
    apply_ms: list[float]
    visible_p50_ms: float
    visible_p99_ms: float
    visible_max_ms: float
    never_visible: int
    failed_writes: int
    last_change_served_after_s: float | None
    old_path_status: int
    wrk_requests: int
    wrk_rps: float
    wrk_p99_us: float
    wrk_non_2xx: int
    wrk_socket_errors: int
    node_rss_mib: float


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 30 samples is the largest one)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def hit_index(total_routes: int) -> int:
    """The route wrk loads: mid-list, without hosts (index % 4 == 0)."""
    return max(4, (total_routes // 2) // 4 * 4)


def patched_index(total_routes: int) -> int:
    """The route the series rewrites: next to the hit route, also without hosts."""
    return hit_index(total_routes) - 1


def alternate_path(index: int, step: int) -> str:
    return f"{configs.route_path(index)}-{'ab'[step % 2]}"


def declarative_config(upstream_port: int, total_routes: int) -> dict[str, Any]:
    """One service, ``total_routes`` routes r00001…; host mix as in the routes case of run.py."""
    routes: list[dict[str, Any]] = []
    for index in range(1, total_routes + 1):
        route: dict[str, Any] = {
            "name": f"r{index:05d}",
            "paths": [configs.route_path(index)],
            "strip_path": False,
        }
        if index % 4 == 1:
            route["hosts"] = [f"h{index:05d}.bench.test"]
        elif index % 4 == 2:
            route["hosts"] = [f"*.w{index:05d}.bench.test"]
        routes.append(route)
    service = {"name": "bench", "url": f"http://127.0.0.1:{upstream_port}", "routes": routes}
    return {"_format_version": "3.0", "services": [service]}


class AdminClient:
    """One keep-alive connection to the Admin API; ``send`` returns status, body and seconds."""

    def __init__(self, port: int, timeout_s: float) -> None:
        self.port = port
        self.timeout_s = timeout_s
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)

    def send(self, method: str, path: str, body: object = None) -> tuple[int, bytes, float]:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        started = time.perf_counter()
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                         timeout=self.timeout_s)  # fmt: skip
            raise
        return response.status, data, time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


def wait_admin(server: Server, admin_port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise StartError(f"meshgate exited; log tail:\n{server.log_tail()}")
        try:
            if http_get(admin_port, "/status", timeout_s=1.0)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise StartError(f"Admin API not up on 127.0.0.1:{admin_port} within {timeout_s:g} s")


def start_node(
    supervisor: Supervisor, binary: str, folder: Path, pin: list[str], workers: int
) -> tuple[Server, int]:
    folder.mkdir(parents=True, exist_ok=True)
    port, admin_port = free_port(), free_port()
    argv = [
        *pin, binary, "run", "--store", f"sqlite:///{folder / 'meshgate.db'}",
        "--proxy-listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
        "--access-log", "off", "--workers", str(workers),
    ]  # fmt: skip
    server = supervisor.start("meshgate", argv, port, folder, ready_timeout_s=60)
    wait_admin(server, admin_port, 30)
    return server, admin_port


def wait_served(port: int, path: str, timeout_s: float) -> float | None:
    """Seconds until GET ``path`` answers 200, None if not within ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if http_get(port, path, timeout_s=1.0)[0] == 200:
                return time.monotonic() - started
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.01)
    return None


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def start_wrk(wrk: str, url: str, connections: int, pin: list[str]) -> subprocess.Popen[str]:
    # Long -d: the series stops it with SIGINT, on which wrk prints its report as usual.
    argv = [*pin, wrk, "-t1", f"-c{connections}", "-d3600s", "--timeout", "2s", "--latency", url]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def stop_wrk(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    if process.returncode not in (0, -signal.SIGINT):
        raise WrkError(f"wrk exited {process.returncode}: {stderr}")
    return stdout


def measure_size(
    options: argparse.Namespace, workers: int, total_routes: int, workdir: Path
) -> SizeResult:
    tools = systems.find_tools(options.meshgate_bin, None)
    if tools.wrk is None:
        raise StartError("wrk not found (bash bench/install.sh)")
    proxy_pin, load_pin = pin_prefixes(options)
    supervisor = Supervisor()
    wrk_process: subprocess.Popen[str] | None = None
    try:
        upstream = systems.start_upstream(supervisor, tools, workdir, load_pin)
        node, admin_port = start_node(supervisor, tools.meshgate, workdir / "meshgate",
                                      proxy_pin, workers)  # fmt: skip
        log(f"[{total_routes} routes] node pid {node.pid}, proxy :{node.port}, admin :{admin_port}")
        admin = AdminClient(admin_port, options.write_timeout)
        status, body, load_s = admin.send(
            "POST", "/config", declarative_config(upstream.port, total_routes)
        )
        if status not in (200, 201):
            raise StartError(f"POST /config answered {status}: {body[:300]!r}")
        hit_path = configs.route_path(hit_index(total_routes)) + "/"
        if wait_served(node.port, hit_path, 5) is None:
            raise StartError(f"GET {hit_path} is not 200 after loading {total_routes} routes")
        log(f"[{total_routes} routes] loaded in {load_s * 1000:.0f} ms")
        wrk_process = start_wrk(tools.wrk, f"http://127.0.0.1:{node.port}{hit_path}",
                                options.connections, load_pin)  # fmt: skip
        time.sleep(options.settle)
        target = f"/routes/r{patched_index(total_routes):05d}"
        apply_ms: list[float] = []
        visible_ms: list[float] = []
        never_visible = 0
        last_served: float | None = None
        failed = 0
        new_path = configs.route_path(patched_index(total_routes))
        for step in range(options.applies):
            new_path = alternate_path(patched_index(total_routes), step)
            try:
                status, body, seconds = admin.send("PATCH", target, {"paths": [new_path]})
            except (OSError, http.client.HTTPException) as error:
                failed += 1
                log(f"PATCH {target} failed: {error}")
                continue
            if status != 200:
                failed += 1
                log(f"PATCH {target} answered {status}: {body[:200]!r}")
                continue
            apply_ms.append(seconds * 1000)
            # The node answers a write after at most its wait_applied timeout even when the
            # apply is not done: also time until the proxy serves the new path.
            served = wait_served(node.port, new_path + "/", options.visible_timeout)
            last_served = served
            served_text = "never" if served is None else f"{served * 1000:.0f} ms later"
            log(f"[{total_routes} routes] PATCH {step + 1}/{options.applies}: "
                f"{seconds * 1000:.0f} ms, served {served_text}")  # fmt: skip
            if served is None:
                never_visible += 1
            else:
                visible_ms.append((seconds + served) * 1000)
            time.sleep(options.gap)
        # The brief's check: the last change is served within 1 s of its write's answer.
        served_after = last_served if last_served is not None and last_served <= 1.0 else None
        old_path = alternate_path(patched_index(total_routes), options.applies)
        old_status = http_get(node.port, old_path + "/")[0]
        time.sleep(options.settle)
        wrk = parse_wrk_output(stop_wrk(wrk_process))
        wrk_process = None
        rss = rss_mib(node.pid)
        admin.close()
    finally:
        if wrk_process is not None and wrk_process.poll() is None:
            wrk_process.kill()
            wrk_process.wait()
        supervisor.stop_all()
    if not apply_ms:
        raise StartError(f"no PATCH succeeded at {total_routes} routes")
    return SizeResult(
        workers=workers,
        routes=total_routes,
        load_s=load_s,
        applies=len(apply_ms),
        apply_p50_ms=percentile(apply_ms, 0.50),
        apply_p99_ms=percentile(apply_ms, 0.99),
        apply_max_ms=max(apply_ms),
        apply_ms=[round(value, 2) for value in apply_ms],
        visible_p50_ms=percentile(visible_ms, 0.50) if visible_ms else -1.0,
        visible_p99_ms=percentile(visible_ms, 0.99) if visible_ms else -1.0,
        visible_max_ms=max(visible_ms, default=-1.0),
        never_visible=never_visible,
        failed_writes=failed,
        last_change_served_after_s=served_after,
        old_path_status=old_status,
        wrk_requests=wrk.requests,
        wrk_rps=wrk.rps,
        wrk_p99_us=wrk.p99_us,
        wrk_non_2xx=wrk.non_2xx,
        wrk_socket_errors=wrk.socket_errors,
        node_rss_mib=rss,
    )


def format_table(results: list[SizeResult]) -> str:
    header = (
        f"{'workers':>7} {'routes':>7} {'load':>9} {'n':>4} {'apply p50':>10} {'p99':>9} {'max':>9} "
        f"{'visible p50':>12} {'p99':>9} {'max':>9} {'last<1s':>7} "
        f"{'wrk req':>9} {'non-2xx':>8} {'sock err':>8} {'errors':>6} {'failed':>6}"
    )
    rows = [header]
    for result in results:
        served = (
            "no"
            if result.last_change_served_after_s is None
            else f"{result.last_change_served_after_s * 1000:.0f}ms"
        )
        errors = result.wrk_non_2xx + result.wrk_socket_errors
        rows.append(
            f"{result.workers:>7} {result.routes:>7,} {result.load_s * 1000:>7.0f}ms {result.applies:>4} "
            f"{result.apply_p50_ms:>8.1f}ms {result.apply_p99_ms:>7.1f}ms "
            f"{result.apply_max_ms:>7.1f}ms {result.visible_p50_ms:>10.1f}ms "
            f"{result.visible_p99_ms:>7.1f}ms {result.visible_max_ms:>7.1f}ms "
            f"{served:>7} {result.wrk_requests:>9,} "
            f"{result.wrk_non_2xx:>8} {result.wrk_socket_errors:>8} {errors:>6} "
            f"{result.failed_writes:>6}"
        )
    return "\n".join(rows)


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"bad --sizes {text!r}: {error}") from None
    if not sizes or min(sizes) < 4:
        raise argparse.ArgumentTypeError("--sizes needs route counts of at least 4")
    return sizes


def parse_workers(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"bad --workers {text!r}: {error}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("--workers needs counts of at least 1")
    return counts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--sizes", type=parse_sizes, default=parse_sizes(DEFAULT_SIZES), help=DEFAULT_SIZES)
    add("--applies", type=int, default=30, help="PATCHes per size (default 30)")
    add("--gap", type=float, default=0.05, help="seconds between PATCHes (default 0.05)")
    add("--visible-timeout", type=float, default=30.0,
        help="seconds to wait for each change to be served (default 30)")  # fmt: skip
    add("--settle", type=float, default=1.0, help="seconds of traffic before and after")
    add("--connections", type=int, default=50, help="wrk connections (default 50)")
    add("--workers", type=parse_workers, default=parse_workers(DEFAULT_WORKERS),
        help=f"meshgate run --workers, one run per count (default {DEFAULT_WORKERS})")  # fmt: skip
    add("--write-timeout", type=float, default=60.0, help="Admin API client timeout, s")
    add("--meshgate-bin", help="meshgate executable (default .venv/bin/meshgate)")
    add("--proxy-cpu", type=int, default=0, help="core for meshgate")
    add("--load-cpu", type=int, default=1, help="core for wrk and the upstream")
    add("--no-pin", action="store_true", help="do not pin with taskset")
    add("--out", type=Path, help="JSON path (default bench/results/apply-<timestamp>.json)")
    add("--no-save", action="store_true", help="print the table only")
    return parser


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    if options.applies < 1:
        build_parser().error("--applies must be >= 1")
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = datetime.datetime.now(datetime.UTC)
    load_at_start = os.getloadavg()
    results: list[SizeResult] = []
    errors: dict[str, str] = {}
    for workers in options.workers:
        for total_routes in options.sizes:
            workdir = Path(tempfile.mkdtemp(prefix=f"meshgate-apply-{total_routes}-"))
            try:
                results.append(measure_size(options, workers, total_routes, workdir))
            except (StartError, WrkError, OSError) as error:
                errors[f"{workers}w/{total_routes}"] = str(error)
                log(f"{workers} workers, size {total_routes} failed: {error}")
            except KeyboardInterrupt:
                log("interrupted: every server stopped")
                return 130
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    print(format_table(results))
    for label, reason in errors.items():
        print(f"failed {label}: {reason.splitlines()[0]}")
    print(f"load average {load_at_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end")
    if not options.no_save:
        out = options.out or RESULTS_DIR / f"apply-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        document = {
            "started": started.isoformat(),
            "argv": sys.argv if argv is None else argv,
            "options": {key: str(value) for key, value in vars(options).items()},
            "cpu_count": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "load_average": {"start": load_at_start, "end": os.getloadavg()},
            "results": [asdict(result) for result in results],
            "errors": errors,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"results written to {out}")
    return 0 if results and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
