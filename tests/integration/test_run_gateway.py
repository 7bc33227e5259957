"""``meshgate run`` end to end: a Kong declarative file, real processes, real HTTP."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from testkit import MESHGATE, EchoUpstreams, Gateway, free_port

CONFIG = """\
_format_version: "3.0"
services:
  - name: balanced
    url: http://pool
    routes:
      - name: balanced
        paths: ["/lb"]
  - name: single
    url: http://127.0.0.1:{p2}/base
    routes:
      - name: regex
        paths: ["~/v(?<version>\\\\d+)/items"]
        regex_priority: 5
      - name: items
        paths: ["/items"]
        strip_path: false
      - name: by-host
        hosts: ["*.example.org"]
        preserve_host: true
upstreams:
  - name: pool
    targets:
      - target: 127.0.0.1:{p1}
      - target: 127.0.0.1:{p2}
"""


def write_config(path: Path, ups: EchoUpstreams, extra: str = "") -> Path:
    path.write_text(CONFIG.format(p1=ups.ports[0], p2=ups.ports[1]) + extra)
    return path


@pytest.fixture
def gateway(tmp_path: Path, echo_upstreams: EchoUpstreams) -> object:
    gw = Gateway(write_config(tmp_path / "kong.yaml", echo_upstreams), free_port())
    yield gw
    gw.stop()


def test_routes_like_kong(gateway: Gateway) -> None:
    got = gateway.echo("/items/1?q=a")
    assert got["url"] == "/base/items/1?q=a"  # strip_path false, service path prefix
    got = gateway.echo("/v7/items/x")
    assert got["url"] == "/base/x"  # regex match stripped whole
    got = gateway.echo("/anything", {"Host": "shop.example.org"})
    assert got["headers"]["host"] == "shop.example.org"  # preserve_host
    assert got["headers"]["x-forwarded-host"] == "shop.example.org"
    status, headers, body = gateway.request("GET", "/nowhere")
    assert status == 404
    assert b"no Route matched" in body
    assert headers["meshgate-error"]


def test_round_robin_over_upstream_targets(gateway: Gateway) -> None:
    seen = Counter(gateway.echo("/lb/x")["upstream"] for _ in range(20))
    assert seen == {"echo-1": 10, "echo-2": 10}


def test_reload_on_sighup_and_refusal_of_invalid_config(
    gateway: Gateway, echo_upstreams: EchoUpstreams
) -> None:
    assert gateway.request("GET", "/new")[0] == 404
    text = gateway.config.read_text().replace(
        "upstreams:",
        f"  - name: added\n    url: http://127.0.0.1:{echo_upstreams.ports[0]}\n"
        "    routes: [{name: new, paths: [/new]}]\nupstreams:",
    )
    gateway.config.write_text(text)
    gateway.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while gateway.request("GET", "/new")[0] != 200:
        assert time.monotonic() < deadline, "reload did not take effect"
        time.sleep(0.1)
    gateway.config.write_text(text.replace("paths: [/new]", "paths: [nope]"))
    gateway.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert gateway.request("GET", "/new")[0] == 200  # running config untouched


def test_graceful_shutdown_finishes_in_flight_request(gateway: Gateway) -> None:
    results: list[int] = []

    def slow() -> None:
        results.append(gateway.request("GET", "/lb/slow", {"x-echo-delay": "1.0"})[0])

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    gateway.signal(signal.SIGTERM)
    thread.join(10)
    assert results == [200]
    assert gateway.proc.wait(10) == 0


def test_workers_share_the_port_and_a_dead_worker_is_replaced(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    gw = Gateway(write_config(tmp_path / "kong.yaml", echo_upstreams), free_port(), workers=2)
    try:
        children = subprocess.run(
            ["pgrep", "-P", str(gw.proc.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        assert len(children) == 2
        for _ in range(10):
            assert gw.request("GET", "/lb/x")[0] == 200
        subprocess.run(["kill", "-9", children[0]], check=True)
        deadline = time.monotonic() + 30
        while True:
            now = subprocess.run(
                ["pgrep", "-P", str(gw.proc.pid)], capture_output=True, text=True
            ).stdout.split()
            if len(now) == 2 and children[0] not in now:
                break
            assert time.monotonic() < deadline, "worker was not replaced"
            time.sleep(0.1)
        ok = sum(gw.request("GET", "/lb/x")[0] == 200 for _ in range(20))
        assert ok == 20
    finally:
        gw.stop()


def test_invalid_file_exits_2_with_every_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        '_format_version: "3.0"\nservices:\n  - name: a\n    port: 99999\n'
        "    routes: [{paths: [nope]}]\n"
    )
    proc = subprocess.run(
        [*MESHGATE, "config", "validate", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2
    assert "services[0].port" in proc.stderr
    assert "services[0].routes[0].paths[0]" in proc.stderr
    assert "services[0].host" in proc.stderr or "services[0]" in proc.stderr


def test_routes_explain_names_the_winner(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    cfg = write_config(tmp_path / "kong.yaml", echo_upstreams)
    proc = subprocess.run(
        [*MESHGATE, "routes", "explain", "GET", "http://x/v3/items", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "MATCH" in ln)
    assert "regex" in line
    assert "does not match" in proc.stdout
    none = subprocess.run(
        [*MESHGATE, "routes", "explain", "GET", "http://x/zzz", "-c", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert none.returncode == 1
    assert "404" in none.stdout


def test_events_asyncapi_lists_the_demo_topics() -> None:
    demo = Path(__file__).parents[2] / "examples" / "demo.yaml"
    proc = subprocess.run(
        [*MESHGATE, "events", "asyncapi", "-c", str(demo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    assert doc["asyncapi"] == "3.0.0"
    assert "orders" in doc["channels"]


def test_the_start_up_hint_names_a_path_a_plain_route_answers() -> None:
    from meshgate import snapshot
    from meshgate.cli.run_cmd import _sample_path

    routes = (
        snapshot.Route(id="h", hosts=("shop.example.org",), paths=("/",)),
        snapshot.Route(id="r", paths=("~/v(?<version>\\d+)/items$",)),
        snapshot.Route(id="p", methods=("POST",), paths=("/post-only",)),
        snapshot.Route(id="e", paths=("/echo",)),
    )
    assert _sample_path(snapshot.Snapshot(routes=routes)) == "/echo"
    assert _sample_path(snapshot.Snapshot(routes=routes[:3])) == "/"
