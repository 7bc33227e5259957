"""Mesh bench (issue 6): sidecar-pair added latency and RSS, control-plane push latency at scale.

    .venv/bin/python bench/mesh_bench.py [--quick] [--dataplanes N] [--profile] [--generator go]

Part 1 — a ``meshgate cp``, an upstream (nginx, else meshgate's echo upstream) and, per mesh
(``default`` without mTLS, ``secure`` with a builtin CA), a server-side sidecar (inbound →
upstream) and a client-side sidecar (outbound → the server sidecar). One fixed-rate open-loop
generator (a process of its own) offers 1,000 rps to the upstream directly and through each
pair (and, with nginx installed, through two chained nginx proxies: what two proxy hops cost
on this machine at the least), alternating 1 s slices in the same run; latency counts from
the intended send time, and the generator's own lateness (write time - intended time) is
reported beside it.  The generator is ``loadgen/`` (Go, built into the work dir each run)
when a Go toolchain is found, else its Python twin ``mesh_bench_load``; ``--generator`` picks.
Memory of every process is read from ``/proc/PID/smaps_rollup`` (RSS, PSS, USS) idle and
right after the load (with ``--sample-every 0.1``: the maximum of samples taken during it,
~8 ms of CPU per sample, which shows in the latency tail).

Part 2 — a fresh ``meshgate cp`` and N simulated dataplanes (``mesh_bench_dpsim``, real
``mgdp/1`` codec, in child processes); once all have ACKed, a MeshTimeout on the whole mesh
is PUT through the Mesh API, several times; per change, the time from the API call to each
dataplane receiving and ACKing the new snapshot. CP CPU seconds come from ``/proc/PID/stat``.
``--profile`` samples the CP with py-spy during admission and during the changes.

Prints a table; writes ``bench/results/mesh-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import harness_configs  # noqa: E402
from harness_procs import (  # noqa: E402
    Server,
    StartError,
    Supervisor,
    cpu_ticks,
    tree_cpu_times,
)
from harness_systems import _start_nginx, find_tools, start_upstream  # noqa: E402
from mesh_bench_cp import (  # noqa: E402
    ControlPlane,
    api,
    client_ports_to,
    memory_mb,
    profile_report,
    rss_mb,
    start_control_plane,
    start_profiler,
    start_sidecar_pair,
    stop_profiler,
    wait_http_ok,
)
from mesh_bench_gen import find_go, generator_argv, pin_tree  # noqa: E402
from mesh_bench_load import percentiles  # noqa: E402
from mesh_bench_report import print_table  # noqa: E402

ECHO = (
    "import asyncio, sys\n"
    "from meshgate.demo.upstreams import start_echo_upstream\n"
    "async def main():\n"
    "    await start_echo_upstream('upstream', port=int(sys.argv[1]))\n"
    "    await asyncio.Event().wait()\n"
    "asyncio.run(main())\n"
)


def start_any_upstream(supervisor: Supervisor, workdir: Path) -> tuple[Server, str]:
    tools = find_tools(None, None)
    if tools.nginx is not None:
        return start_upstream(supervisor, tools, workdir, []), "nginx (1 worker)"
    from harness_procs import free_port

    port = free_port()
    argv = [sys.executable, "-c", ECHO, str(port)]
    return supervisor.start("upstream", argv, port, workdir), "meshgate demo echo upstream"


def start_nginx_pair(supervisor: Supervisor, workdir: Path, upstream_port: int) -> Server | None:
    """Two chained nginx proxies in front of the upstream (the machine's floor for two hops);
    returns the first one, None without nginx."""
    nginx = find_tools(None, None).nginx
    if nginx is None:
        return None
    next_port = upstream_port
    for name in ("nginx-pair-server", "nginx-pair-client"):

        def conf(prefix: str, port: int, upstream: int = next_port) -> str:
            return harness_configs.proxy_nginx_conf(prefix, port, upstream, 64)

        server = _start_nginx(supervisor, nginx, name, workdir, [], conf)
        next_port = server.port
    return server


# ---------------------------------------------------------------- part 1: sidecar pair


def bench_pair(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    generator_cmd = generator_argv(args.generator, workdir)
    own_cpus = os.sched_getaffinity(0)
    supervisor = Supervisor()
    try:
        upstream, upstream_kind = start_any_upstream(supervisor, workdir)
        cp = start_control_plane(supervisor, workdir / "cp-pair")
        api(cp, "PUT", "/meshes/secure", {
            "type": "Mesh", "name": "secure",
            "mtls": {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]},
        })  # fmt: skip
        pairs = {
            "plain": start_sidecar_pair(supervisor, cp, "default", "plain", upstream.port),
            "mtls": start_sidecar_pair(supervisor, cp, "secure", "mtls", upstream.port),
        }
        for pair in pairs.values():
            wait_http_ok(pair.outbound_port, timeout_s=60)
        time.sleep(2)
        watched = {"cp": cp.server.pid}
        for mode, pair in pairs.items():
            watched[f"{mode}-client-sidecar"] = pair.client.pid
            watched[f"{mode}-server-sidecar"] = pair.server.pid
        idle = {name: memory_mb(pid) for name, pid in watched.items()}
        loaded = {name: dict.fromkeys(("rss", "pss", "uss"), 0.0) for name in watched}
        links: dict[str, set[int]] = {mode: set() for mode in pairs}
        targets = {"direct": upstream.port}
        targets.update({mode: pair.outbound_port for mode, pair in pairs.items()})
        reference = start_nginx_pair(supervisor, workdir, upstream.port)
        if reference is not None:
            targets["nginx2"] = reference.port
        cpu_before = {name: sum(tree_cpu_times([pid]).__dict__.values())
                      for name, pid in watched.items()}  # fmt: skip
        raw_out = ["--raw-out", str(args.raw_out)] if args.raw_out else []
        if args.pin:  # proxies on core 0; generator, upstream, CP and this process on core 1
            proxies = [p.pid for pair in pairs.values() for p in (pair.client, pair.server)]
            proxies += [reference.pid] if reference is not None else []
            for pid in proxies:
                pin_tree(pid, 0)
            for pid in (upstream.pid, cp.server.pid, os.getpid()):
                pin_tree(pid, 1)
        ticks_before = cpu_ticks()
        generator = subprocess.Popen(
            [*generator_cmd, "--rate", str(args.rate), "--duration", str(args.duration),
             *(f"--target={name}={port}" for name, port in targets.items()), *raw_out],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

        def sample(with_links: bool) -> None:
            for name, pid in watched.items():
                for kind, value in memory_mb(pid).items():
                    loaded[name][kind] = max(loaded[name][kind], value)
            for mode, pair in pairs.items() if with_links else ():
                links[mode] |= client_ports_to(pair.server.port)

        try:
            ticks = 0
            while generator.poll() is None:
                time.sleep(args.sample_every or 0.1)
                if args.sample_every:  # reading smaps_rollup costs ~1 ms of CPU per process
                    ticks += 1
                    sample(with_links=ticks % 10 == 0)
            if not args.sample_every:
                sample(with_links=True)
            output, _ = generator.communicate()
        finally:
            if generator.poll() is None:
                generator.kill()
                generator.wait()
        if generator.returncode != 0:
            raise StartError(f"the load generator failed ({generator.returncode})")
        latency = json.loads(output)
        spent = [after - before for after, before in zip(cpu_ticks(), ticks_before, strict=True)]
        cpu = {name: sum(tree_cpu_times([pid]).__dict__.values()) - cpu_before[name]
               for name, pid in watched.items()}  # fmt: skip
        added = {
            mode: {q: _minus(latency[mode][q], latency["direct"][q]) for q in ("p50", "p90", "p99")}
            for mode in targets
            if mode != "direct"
        }
        return {
            "upstream": upstream_kind,
            "generator": args.generator,
            "pinned": args.pin,
            "memory_sampled_every_s": args.sample_every,
            "machine_cpu_share_during_load": {
                "busy": (sum(spent) - spent[3] - spent[4]) / max(1, sum(spent)),
                "steal": spent[7] / max(1, sum(spent)),
            },
            "rate_rps": args.rate,
            "seconds_per_target": args.duration,
            "latency_ms": latency,
            "added_ms": added,
            "memory_idle_mb": idle,
            "memory_loaded_max_mb": loaded,
            "cpu_s_during_load": cpu,
            "sidecar_to_sidecar_connections_seen": {m: len(p) for m, p in links.items()},
        }
    finally:
        os.sched_setaffinity(0, own_cpus)
        supervisor.stop_all()


def _minus(a: Any, b: Any) -> float | None:
    return None if a is None or b is None else float(a) - float(b)


# ---------------------------------------------------------------- part 2: CP at scale


def bench_scale(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    supervisor = Supervisor()
    sims: list[subprocess.Popen[str]] = []
    profiles: dict[str, Any] = {}
    try:
        cp = start_control_plane(supervisor, workdir / "cp-scale")
        token_file = workdir / "sim.token"
        token_file.write_text(api(cp, "POST", "/tokens/dataplane", {"mesh": "default"}))
        rss_start, cpu_start = rss_mb(cp.server.pid), _cpu(cp.server.pid)
        profiler = start_profiler(cp.server.pid, workdir / "admit.txt") if args.profile else None
        per_proc = -(-args.dataplanes // args.sim_procs)
        started = time.monotonic()
        for first in range(0, args.dataplanes, per_proc):
            count = min(per_proc, args.dataplanes - first)
            sims.append(subprocess.Popen(
                [sys.executable, str(BENCH / "mesh_bench_dpsim.py"), "--port", str(cp.dp_port),
                 "--token-file", str(token_file), "--first", str(first), "--count", str(count),
                 "--update-timeout", str(args.update_timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            ))  # fmt: skip
        ready = [_read_event(sim, "ready") for sim in sims]
        admit_s = time.monotonic() - started
        if profiler is not None:
            profiles["admission"] = profile_report(stop_profiler(profiler), workdir / "admit.txt")
        admitted = sum(r["sessions"] - r["failed"] for r in ready)
        cpu_admit = _cpu(cp.server.pid) - cpu_start
        rss_connected = rss_mb(cp.server.pid)
        time.sleep(2)
        changes = []
        profiler = start_profiler(cp.server.pid, workdir / "push.txt") if args.profile else None
        for change in range(args.changes):
            changes.append(_one_change(cp, sims, change))
            time.sleep(1)
        if profiler is not None:
            profiles["policy_changes"] = profile_report(stop_profiler(profiler),
                                                        workdir / "push.txt")  # fmt: skip
        all_latencies = [x for c in changes for x in c.pop("_ack_ms")]
        return {
            "dataplanes_requested": args.dataplanes,
            "dataplanes_admitted": admitted,
            "sim_processes": len(sims),
            "admission_errors": sorted({e for r in ready for e in r["errors"]}),
            "admission_wall_s": admit_s,
            "snapshots_pushed_during_admission": sum(r["snapshots_before_arm"] for r in ready),
            "cp_cpu_s_admission": cpu_admit,
            "cp_rss_mb_start": rss_start,
            "cp_rss_mb_connected": rss_connected,
            "cp_rss_mb_end": rss_mb(cp.server.pid),
            "changes": changes,
            "change_to_ack_ms_all": percentiles(all_latencies),
            "profiles": profiles,
        }
    finally:
        for sim in sims:
            if sim.stdin is not None:
                sim.stdin.close()
        for sim in sims:
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
        supervisor.stop_all()


def _one_change(cp: ControlPlane, sims: list[subprocess.Popen[str]], change: int) -> dict[str, Any]:
    for sim in sims:
        assert sim.stdin is not None
        sim.stdin.write("arm\n")
        sim.stdin.flush()
    for sim in sims:
        _read_event(sim, "armed")
    cpu_before = _cpu(cp.server.pid)
    policy = {
        "type": "MeshTimeout", "name": "bench-timeout", "mesh": "default",
        "spec": {
            "targetRef": {"kind": "Mesh"},
            "from": [{"targetRef": {"kind": "Mesh"},
                      "default": {"http": {"requestTimeout": f"{5 + change}s"}}}],
            "to": [{"targetRef": {"kind": "Mesh"},
                    "default": {"http": {"requestTimeout": f"{5 + change}s"}}}],
        },
    }  # fmt: skip
    called = time.monotonic()
    api(cp, "PUT", "/meshes/default/meshtimeouts/bench-timeout", policy)
    api_s = time.monotonic() - called
    times = [t for sim in sims for t in _read_event(sim, "updates")["times"]]
    received = [(t[0] - called) * 1000 for t in times if t is not None]
    acked = [(t[1] - called) * 1000 for t in times if t is not None]
    return {
        "api_call_ms": api_s * 1000,
        "updated": len(acked),
        "missing": sum(t is None for t in times),
        "received_ms": percentiles(received),
        "acked_ms": percentiles(acked),
        "cp_cpu_s": _cpu(cp.server.pid) - cpu_before,
        "_ack_ms": acked,
    }


def _cpu(pid: int) -> float:
    times = tree_cpu_times([pid])
    return times.user_s + times.sys_s


def _read_event(sim: subprocess.Popen[str], kind: str) -> dict[str, Any]:
    assert sim.stdout is not None
    while True:
        line = sim.stdout.readline()
        if not line:
            raise StartError(f"dataplane simulator exited ({sim.poll()}) before '{kind}'")
        event: dict[str, Any] = json.loads(line)
        if event.get("event") == kind:
            return event


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s per target, 100 dataplanes")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=None, help="seconds per target")
    parser.add_argument("--dataplanes", type=int, default=None)
    parser.add_argument("--sim-procs", type=int, default=2)
    parser.add_argument("--changes", type=int, default=3)
    parser.add_argument("--update-timeout", type=float, default=120.0)
    parser.add_argument("--profile", action="store_true", help="py-spy the CP in part 2")
    parser.add_argument("--only", choices=("pair", "scale"), default=None)
    parser.add_argument(
        "--generator",
        choices=("go", "python"),
        default=None,
        help="part 1's load generator (default: go when a Go toolchain is found, else python)",
    )
    parser.add_argument(
        "--raw-out", default=None, help="go generator: CSV of every measured request"
    )
    parser.add_argument(
        "--sample-every",
        type=float,
        default=0.0,
        help="pair: seconds between memory samples during the load (default 0: once, right "
        "after it; each sample costs ~8 ms of CPU and moves direct p99 from ~1.3 to ~3 ms)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="pair: proxies on core 0, everything else on core 1"
    )
    args = parser.parse_args()
    if args.raw_out is not None and args.generator == "python":
        parser.error("--raw-out needs --generator go")
    if args.generator is None:
        args.generator = "go" if find_go() is not None else "python"
    if args.only in (None, "pair"):
        print(f"load generator: {args.generator}", flush=True)
    args.duration = args.duration or (3.0 if args.quick else 10.0)
    args.dataplanes = args.dataplanes or (100 if args.quick else 1000)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the CP inherits it
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": {k: v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()},
    }
    with tempfile.TemporaryDirectory(prefix="mesh-bench-") as temporary:
        workdir = Path(temporary)
        if args.only in (None, "pair"):
            result["pair"] = bench_pair(args, workdir)
        if args.only in (None, "scale"):
            result["scale"] = bench_scale(args, workdir)
    result["machine"]["loadavg_at_end"] = os.getloadavg()
    print_table(result)
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"mesh-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2))
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
