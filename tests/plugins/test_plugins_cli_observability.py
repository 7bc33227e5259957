"""End to end through ``meshgate run`` with a Kong declarative file and 2 worker processes:
file-log records every request (flushed on shutdown), transformers apply, and prometheus
counts from both workers are summed through the node's multiprocess directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit import EchoUpstreams, Gateway, free_port

CONFIG = """\
_format_version: "3.0"
services:
  - name: echo
    url: http://127.0.0.1:{port}
    routes:
      - name: api
        paths: ["/api"]
        plugins:
          - name: request-transformer
            config: {{add: {{headers: ["x-via-plugin:yes"]}}}}
          - name: response-transformer
            config: {{add: {{json: ["served_by:meshgate"]}}}}
          - name: file-log
            config: {{path: "{log}"}}
plugins:
  - name: prometheus
    config: {{status_code_metrics: true, latency_metrics: true}}
"""

RENDER = "from meshgate.plugins.prometheus.exposition import render_metrics; print(render_metrics()[0].decode())"


def _count(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kong_http_requests_total{") and 'route="api"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.slow
def test_two_workers_log_transform_and_count(
    tmp_path: Path, echo_upstreams: EchoUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime_dir = tmp_path / "runtime"
    monkeypatch.setenv("MESHGATE_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    log = tmp_path / "access.log"
    config = tmp_path / "kong.yaml"
    config.write_text(CONFIG.format(port=echo_upstreams.ports[0], log=log))
    gw = Gateway(config, free_port(), workers=2)
    try:
        for i in range(20):
            status, _, body = gw.request("GET", f"/api/{i}", headers={"connection": "close"})
            assert status == 200, body
            echoed = json.loads(body)
            assert echoed["headers"]["x-via-plugin"] == "yes"
            assert echoed["served_by"] == "meshgate"
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(runtime_dir / "prometheus")}
        deadline = time.monotonic() + 15
        counted = 0.0
        while time.monotonic() < deadline:  # workers flush their counts every second
            out = subprocess.run([sys.executable, "-c", RENDER], env=env, capture_output=True,
                                 text=True, timeout=60, check=True).stdout  # fmt: skip
            counted = _count(out)
            if counted == 20:
                break
            time.sleep(0.3)
        assert counted == 20
    finally:
        output = gw.stop()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["request"]["uri"] for r in records) == sorted(f"/api/{i}" for i in range(20)), (
        output
    )
