"""The bench harness parses wrk, builds its configs, manages processes and runs end to end."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

import harness_configs as configs  # noqa: E402
import harness_report as report  # noqa: E402
from harness_procs import (  # noqa: E402
    StartError,
    Supervisor,
    child_environment,
    free_port,
    http_get,
    process_tree,
    tree_cpu_times,
)
from harness_wrk import WrkError, parse_wrk_output, wrk_command  # noqa: E402


def _load_run_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_entry", BENCH / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench_run = _load_run_module()

WRK_SAMPLE = """\
Running 2s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   650.12us  100.00us   5.00ms   90.00%
    Req/Sec    76.00k     1.00k   80.00k    70.00%
  Latency Distribution
     50%  612.00us
     75%  700.50us
     90%    0.90ms
     99%    1.02ms
  153150 requests in 2.00s, 20.00MB read
  Non-2xx or 3xx responses: 7
  Socket errors: connect 1, read 2, write 0, timeout 3
Requests/sec:  76575.00
Transfer/sec:     10.00MB
"""


def test_wrk_report_is_parsed_into_microseconds_and_counts() -> None:
    result = parse_wrk_output(WRK_SAMPLE)
    assert result.requests == 153150
    assert result.duration_s == pytest.approx(2.0)
    assert result.rps == pytest.approx(76575.0)
    assert result.p50_us == pytest.approx(612.0)
    assert result.p90_us == pytest.approx(900.0)
    assert result.p99_us == pytest.approx(1020.0)
    assert result.non_2xx == 7
    assert result.socket_errors == 6


def test_wrk_report_without_latency_distribution_is_refused() -> None:
    without_latency = WRK_SAMPLE.replace("  Latency Distribution\n", "").replace("99%", "98%")
    with pytest.raises(WrkError):
        parse_wrk_output(without_latency)


def test_wrk_targets_only_loopback_and_whole_seconds() -> None:
    argv = wrk_command("wrk", "http://127.0.0.1:9/x", 50, 3, ["taskset", "-c", "1"])
    assert argv == ["taskset", "-c", "1", "wrk", "-t1", "-c50", "-d3s", "--latency",
                    "http://127.0.0.1:9/x"]  # fmt: skip
    with_key = wrk_command("wrk", "http://127.0.0.1:9/", 50, 3, [], {"apikey": "k"})
    assert with_key[-3:] == ["-H", "apikey: k", "http://127.0.0.1:9/"]
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        wrk_command("wrk", "http://10.0.0.1:9/", 1, 1, [])
    with pytest.raises(ValueError, match="seconds"):
        wrk_command("wrk", "http://127.0.0.1:9/", 1, 0, [])


def test_single_route_config_is_the_kong_declarative_shape() -> None:
    document = yaml.safe_load(configs.kong_single_route(4321))
    assert document == {
        "_format_version": "3.0",
        "services": [
            {
                "name": "bench",
                "url": "http://127.0.0.1:4321",
                "routes": [{"name": "bench", "paths": ["/"]}],
            }
        ],
    }


def test_ten_thousand_routes_hit_one_that_is_first_in_no_ordering() -> None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the pure-Python one takes 8 s
    document = yaml.load(configs.kong_many_routes(4321, 10_000), Loader=loader)
    routes = document["services"][0]["routes"]
    assert len(routes) == 10_000
    paths = [path for route in routes for path in route["paths"]]
    assert len(set(paths)) == 10_000
    request_path = configs.routes_request_path()
    matching = [route for route in routes if request_path.startswith(route["paths"][0] + "/")]
    assert len(matching) == 1
    hit = matching[0]
    assert "hosts" not in hit
    assert routes.index(hit) not in (0, len(routes) - 1)
    names = sorted(route["name"] for route in routes)
    assert names.index(hit["name"]) not in (0, len(names) - 1)
    with_hosts = [route for route in routes if "hosts" in route]
    assert any(host.startswith("*.") for route in with_hosts for host in route["hosts"])
    assert any(not host.startswith("*.") for route in with_hosts for host in route["hosts"])
    # Hosts beat no-hosts in Kong's order, so host-bearing routes come before the hit one.
    assert len(with_hosts) >= 2_000


def test_one_route_baseline_holds_only_the_hit_route() -> None:
    routes = yaml.safe_load(configs.kong_many_routes(4321, 1))["services"][0]["routes"]
    assert [route["paths"] for route in routes] == [[configs.route_path(5000)]]
    with pytest.raises(ValueError, match="at least"):
        configs.kong_many_routes(4321, 500)


def test_proxy_configs_listen_on_loopback_and_keep_upstream_alive() -> None:
    nginx = configs.proxy_nginx_conf("/tmp/x", 8001, 8002, 128)
    assert "listen 127.0.0.1:8001;" in nginx
    assert "server 127.0.0.1:8002;" in nginx
    assert "keepalive 128;" in nginx
    assert 'proxy_set_header Connection "";' in nginx
    envoy = json.loads(configs.envoy_bootstrap(8003, 8002))
    listener = envoy["static_resources"]["listeners"][0]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 8003}
    assert len(configs.KIB_BODY.encode()) == 1024
    assert len(configs.SMALL_BODY.encode()) == 5
    upstream = configs.upstream_nginx_conf("/tmp/x", 8002)
    assert f'return 200 "{configs.KIB_BODY}";' in upstream


def test_cli_flags_parse_cases_systems_and_quick() -> None:
    options = bench_run.parse_args(["--quick", "--cases", "small-c1,routes-c50,1k-c7"])
    assert (options.duration, options.rounds) == (2, 1)
    assert [(case.kind, case.connections) for case in options.cases] == [
        ("small", 1),
        ("routes", 50),
        ("1k", 7),
    ]
    assert options.cases[2].path == "/1k"
    assert options.systems == ["direct", "nginx", "envoy", "pyfloor", "meshgate"]
    with pytest.raises(SystemExit):
        bench_run.parse_args(["--cases", "huge-c5"])
    with pytest.raises(SystemExit):
        bench_run.parse_args(["--systems", "direct,haproxy"])


def test_plugins_case_runs_meshgate_with_and_without_plugins_and_sends_the_key() -> None:
    options = bench_run.parse_args(["--cases", "plugins-c50", "--systems", "nginx,meshgate"])
    (case,) = options.cases
    assert case.systems(options.systems) == ["nginx", "meshgate", "meshgate-plugins"]
    assert case.systems(["nginx", "envoy"]) == ["nginx", "envoy"]
    assert case.headers == {"apikey": configs.BENCH_API_KEY}
    assert bench_run.parse_args(["--cases", "small-c50"]).cases[0].headers == {}
    assert "plugins-c50" in bench_run.DEFAULT_CASES
    document = yaml.safe_load(configs.kong_plugins_route(4321))
    (route,) = document["services"][0]["routes"]
    assert [p["name"] for p in route["plugins"]] == ["key-auth", "rate-limiting", "prometheus"]
    assert route["plugins"][1]["config"] == {"second": 10**9, "policy": "local"}
    assert document["consumers"][0]["keyauth_credentials"] == [{"key": configs.BENCH_API_KEY}]


def test_plugins_delta_is_the_median_of_same_round_differences() -> None:
    rows = [
        _measurement("meshgate", 1, 1000.0, 50.0),
        _measurement("meshgate-plugins", 1, 800.0, 60.0),
        _measurement("meshgate", 2, 2000.0, 40.0),
        _measurement("meshgate-plugins", 2, 1000.0, 55.0),
    ]
    rows = [replace(m, case="plugins-c50") for m in rows]
    delta = report.plugins_delta(rows, "plugins-c50", "meshgate-plugins", "meshgate")
    assert delta is not None
    # cpu per round: (60-50)*2 = 20 and (55-40)*2 = 30 (user and sys each); wall: 250, 500
    assert delta == {"cpu_us": 25.0, "wall_us": 375.0}
    assert report.plugins_delta(rows, "plugins-c50", "meshgate-plugins", "nginx") is None


def _measurement(
    system: str, round_number: int, rps: float, cpu: float | None
) -> report.Measurement:
    return report.Measurement(
        case="small-c50", system=system, round=round_number, requests=1000, rps=rps,
        p50_us=100.0, p99_us=rps / 100, cpu_user_us_per_req=cpu, cpu_sys_us_per_req=cpu,
        upstream_cpu_us_per_req=1.0, other_load_cores=0.0, non_2xx=0, socket_errors=0,
    )  # fmt: skip


def test_ratios_are_medians_of_per_round_ratios() -> None:
    measurements = [
        _measurement("nginx", 1, 100.0, 5.0),
        _measurement("meshgate", 1, 50.0, 10.0),
        _measurement("nginx", 2, 200.0, 5.0),
        _measurement("meshgate", 2, 160.0, 10.0),
        _measurement("nginx", 3, 400.0, 5.0),
        _measurement("meshgate", 3, 240.0, 10.0),
        _measurement("direct", 3, 900.0, None),
    ]
    ratios = report.case_ratios(measurements, "small-c50")
    assert ratios["meshgate/nginx rps"] == pytest.approx(0.6)  # rounds: 0.5, 0.8, 0.6
    assert ratios["meshgate/nginx cpu"] == pytest.approx(2.0)
    assert "direct/nginx cpu" not in ratios
    table = report.format_case_table(
        measurements,
        "small-c50",
        "title",
        ["direct", "nginx", "envoy", "meshgate"],
    )
    assert "meshgate/nginx rps 0.60" in table
    assert "envoy" not in table.split("ratios:")[0]


def test_process_tree_sees_a_child_and_cpu_times_grow() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in process_tree(os.getpid())
        before = tree_cpu_times([os.getpid()])
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:
            pass
        after = tree_cpu_times([os.getpid()])
        assert after.user_s + after.sys_s > before.user_s + before.sys_s
    finally:
        child.kill()
        child.wait()


def test_supervisor_starts_probes_and_stops_a_server(tmp_path: Path) -> None:
    supervisor = Supervisor()
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    try:
        server = supervisor.start("files", argv, port, tmp_path, ready_timeout_s=20)
        status, _ = http_get(port, "/")
        assert status == 200
    finally:
        supervisor.stop_all()
    assert server.process.poll() is not None
    assert supervisor.servers == []


def test_supervisor_reports_a_server_that_exits_early(tmp_path: Path) -> None:
    supervisor = Supervisor()
    argv = [sys.executable, "-c", "import sys; print('no config here'); sys.exit(3)"]
    with pytest.raises(StartError, match=r"status 3(.|\n)*no config here"):
        supervisor.start("broken", argv, free_port(), tmp_path, ready_timeout_s=20)
    assert supervisor.servers == []


FAKE_MESHGATE = """\
#!{python}
import http.server
import sys

argv = sys.argv[1:]
if "--admin-listen" in argv:
    print("Error: No such option: --admin-listen", file=sys.stderr)
    sys.exit(2)
if argv == ["--version"]:
    print("fake-meshgate 0.0")
    sys.exit(0)
with open(argv[argv.index("-c") + 1]) as config:
    assert config.read().startswith('_format_version: "3.0"')
host, port = argv[argv.index("--proxy-listen") + 1].rsplit(":", 1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = {kib!r} if self.path == "/1k" else b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((host, int(port)), Handler).serve_forever()
"""

needs_wrk_and_nginx = pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("nginx", path="/usr/sbin:/usr/bin") is None,
    reason="wrk and nginx not installed (bash bench/install.sh)",
)


def _run_bench(*flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(BENCH / "run.py"), "--rounds", "1", "--duration", "1", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=55, check=False)


def _assert_servers_stopped(document: dict[str, object]) -> None:
    metadata = document["metadata"]
    assert isinstance(metadata, dict)
    assert metadata["server_pids"]
    for pid in metadata["server_pids"].values():
        assert not Path(f"/proc/{pid}").exists(), f"server {pid} still running"


@pytest.mark.slow
@needs_wrk_and_nginx
def test_harness_measures_direct_and_skips_a_system_that_cannot_start(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = _run_bench(
        "--systems", "direct,meshgate", "--cases", "small-c1,routes-c2", "--warmup", "1",
        "--meshgate-bin", str(tmp_path / "no-meshgate"), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "SKIPPED meshgate" in done.stderr
    document = json.loads(out.read_text())
    assert set(document["metadata"]["skipped"]) == {"meshgate", "meshgate-1route", "meshgate-10k"}
    measured = [(m["case"], m["system"]) for m in document["measurements"]]
    assert measured == [("small-c1", "direct")]
    assert document["measurements"][0]["rps"] > 0
    assert "== small-c1" in done.stdout
    _assert_servers_stopped(document)


@pytest.mark.slow
@needs_wrk_and_nginx
def test_harness_compares_proxies_and_route_counts_in_one_run(tmp_path: Path) -> None:
    fake = tmp_path / "meshgate"
    fake.write_text(FAKE_MESHGATE.format(python=sys.executable, kib=configs.KIB_BODY.encode()))
    fake.chmod(0o755)
    out = tmp_path / "results.json"
    done = _run_bench(
        "--systems", "direct,nginx,pyfloor,meshgate", "--cases", "1k-c2,routes-c2", "--warmup", "0",
        "--meshgate-bin", str(fake), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(out.read_text())
    assert document["metadata"]["skipped"] == {}
    measured = {(m["case"], m["system"]) for m in document["measurements"]}
    assert measured == {
        ("1k-c2", "direct"),
        ("1k-c2", "nginx"),
        ("1k-c2", "pyfloor"),
        ("1k-c2", "meshgate"),
        ("routes-c2", "meshgate-1route"),
        ("routes-c2", "meshgate-10k"),
    }
    for m in document["measurements"]:
        assert m["rps"] > 0
        assert m["non_2xx"] == 0
        assert (m["cpu_us_per_req"] is None) == (m["system"] == "direct")
    assert set(document["cases"]["1k-c2"]["ratios"]) >= {
        "meshgate/nginx rps", "meshgate/nginx cpu", "meshgate/pyfloor rps", "pyfloor/nginx rps"
    }  # fmt: skip
    assert "meshgate-10k/meshgate-1route rps" in document["cases"]["routes-c2"]["ratios"]
    assert "meshgate/nginx rps" in done.stdout
    _assert_servers_stopped(document)


def test_plugin_cost_runs_the_real_chain_of_the_plugins_case() -> None:
    import plugin_cost

    rows = plugin_cost.measure(iterations=30, repeats=1)
    assert [row.name for row in rows] == [
        "runtime", "key-auth", "rate-limiting", "prometheus", "all plugins",
    ]  # fmt: skip
    table = plugin_cost.format_table(rows, {"plugins-c50": {"cpu_us": 12.5, "wall_us": 20.0}})
    assert "key-auth" in table
    assert "+12.5 µs CPU/request" in table
    runner = plugin_cost._Runner()
    chain = runner.chain(runner.every)
    assert chain.names == ("key-auth", "rate-limiting", "prometheus")
    runner.headers = [(b"Host", b"x")]  # no key: key-auth refuses, and the timing says so
    with pytest.raises(RuntimeError, match="refused"):
        runner.once(chain)


def test_a_started_system_gets_absolute_pythonpath_entries(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``PYTHONPATH=some/src bench/run.py`` (another tree to measure) must reach meshgate
    started in its own folder: relative entries are resolved against the harness's directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["other/src", "/abs/dir"]))
    env = child_environment({"EXTRA": "1"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "other/src"), "/abs/dir"]
    assert env["EXTRA"] == "1"
    monkeypatch.delenv("PYTHONPATH")
    assert "PYTHONPATH" not in child_environment()
