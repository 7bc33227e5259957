"""``meshgate config dump|apply|diff`` against a running node and against a store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from testkit import MESHGATE, EchoUpstreams, Gateway, free_port

FILE = """\
_format_version: "3.0"
services:
  - name: a
    url: http://127.0.0.1:{port}
    routes:
      - name: a
        paths: ["/a"]
    plugins:
      - name: request-termination
        config: {{status_code: 418, message: teapot}}
"""


def meshgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MESHGATE, *args], capture_output=True, text=True, timeout=60)


def test_apply_diff_dump_through_the_admin_api(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    gw = Gateway(None, free_port(), "--store", f"sqlite:///{tmp_path}/g.db")
    admin = f"http://127.0.0.1:{gw.admin_port}"
    try:
        cfg = tmp_path / "kong.yaml"
        cfg.write_text(FILE.format(port=echo_upstreams.ports[0]))
        assert meshgate("config", "diff", str(cfg), "--admin", admin).returncode == 1
        applied = meshgate("config", "apply", str(cfg), "--admin", admin)
        assert applied.returncode == 0, applied.stderr
        assert "loaded 1 services, 1 routes, 1 plugins" in applied.stdout, applied.stdout
        assert gw.request("GET", "/a")[0] == 418
        same = meshgate("config", "diff", str(cfg), "--admin", admin)
        assert same.returncode == 0, same.stdout
        assert "0 change(s)" in same.stdout
        dumped = meshgate("config", "dump", "--admin", admin)
        assert "request-termination" in dumped.stdout
        cfg.write_text(FILE.format(port=echo_upstreams.ports[0]).replace("418", "99"))
        bad = meshgate("config", "apply", str(cfg), "--admin", admin)
        assert bad.returncode == 2
        assert "plugins[0].config.status_code" in bad.stderr, bad.stderr
        assert gw.request("GET", "/a")[0] == 418  # nothing applied
    finally:
        gw.stop()


def test_apply_and_dump_a_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/s.db"
    cfg = tmp_path / "kong.yaml"
    cfg.write_text(FILE.format(port=9))
    assert meshgate("config", "apply", str(cfg), "--store", store).returncode == 0
    assert meshgate("config", "diff", str(cfg), "--store", store).returncode == 0
    assert "name: a" in meshgate("config", "dump", "--store", store).stdout
