"""``meshgate demo mesh`` from start to stop: the guide's deny example gives its 403, and a
SIGTERM or Ctrl-C (also in the middle of start-up) stops every process the demo started."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mesh_demo_kit import SPAN, DemoRun, alive, processes_in, status_of, still_running

from testkit import eventually

pytestmark = pytest.mark.slow


def test_deny_example_gives_403_and_sigterm_stops_every_child(tmp_path: Path) -> None:
    demo = DemoRun(tmp_path / "demo")
    try:
        demo.wait_for("ready")
        frontend_to_db, backend_to_db = demo.base + 31, demo.base + 32
        assert status_of(frontend_to_db) == 200  # allowed until the example is applied
        assert f":{frontend_to_db}/" in demo.guide_command("# 403")[-1]
        assert f":{backend_to_db}/" in demo.guide_command("# 200: backend -> db")[-1]

        applied = subprocess.run(
            demo.guide_command("mesh apply -f"), capture_output=True, text=True, timeout=30
        )
        assert applied.returncode == 0, applied.stderr
        assert "MeshTrafficPermission only-backend-to-db created" in applied.stdout
        eventually(lambda: status_of(frontend_to_db) == 403)
        assert status_of(backend_to_db) == 200
        assert status_of(demo.base + 30) == 200  # frontend -> backend: not the policy's target

        pids = demo.pids()
        assert len(pids) == 7
        assert all(alive(pid) for pid in pids.values())
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.finish() == 0, demo.text()
        # gone when the demo exits: it waited for each, none is left to die with it later
        assert still_running(list(pids.values())) == []
        assert processes_in(demo.dir) == []
        assert "meshgate demo mesh: stopped" in demo.out[-1]
        assert "did not stop on SIGTERM" not in "".join(demo.err)
        assert _all_ports_free(demo.base)
    finally:
        demo.close()


def test_ctrl_c_during_start_up_stops_what_was_started(tmp_path: Path) -> None:
    demo = DemoRun(tmp_path / "demo")
    try:
        demo.wait_for("starting in")
        # the control plane and the apps start at once; the sidecars not before the CP listens
        eventually(lambda: len((demo.dir / "pids").read_text().splitlines()) >= 4)
        pids = demo.pids()
        demo.proc.send_signal(signal.SIGINT)
        assert demo.finish() == 0, demo.text()
        assert "ready" not in "".join(demo.out)
        assert still_running(list(demo.pids().values())) == []
        assert set(pids) <= set(demo.pids())
        assert processes_in(demo.dir) == []
    finally:
        demo.close()


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_children_die_with_a_killed_demo(tmp_path: Path) -> None:
    demo = DemoRun(tmp_path / "demo")
    try:
        demo.wait_for("starting in")
        eventually(lambda: len((demo.dir / "pids").read_text().splitlines()) >= 4)
        demo.proc.kill()  # no chance to clean up: the children get SIGTERM from the kernel
        demo.finish()
        eventually(lambda: not processes_in(demo.dir), timeout=15)
        assert still_running(list(demo.pids().values())) == []
    finally:
        demo.close()


def _all_ports_free(base: int) -> bool:
    from mesh_demo_kit import _bindable

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(_bindable(base + offset) for offset in range(SPAN)):
            return True
        time.sleep(0.05)
    return False
