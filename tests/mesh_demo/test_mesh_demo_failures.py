"""``meshgate demo mesh`` when a piece cannot start: a clear error naming the piece (and its
log file), a non-zero exit, and no process of the demo left running."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from mesh_demo_kit import DemoRun, free_base_port, processes_in, still_running

from testkit import MESHGATE


@pytest.mark.parametrize(
    ("offset", "piece"),
    [
        (0, "control plane Mesh API"),
        (21, "backend-1 sidecar inbound"),
        (32, "backend-1 sidecar outbound to db"),
    ],
)
def test_a_port_already_taken_is_named_and_nothing_starts(
    tmp_path: Path, offset: int, piece: str
) -> None:
    demo_dir = tmp_path / "demo"
    base = free_base_port()
    taken = base + offset
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        demo = DemoRun(demo_dir, base=base)
        try:
            assert demo.finish() == 1
            error = "".join(demo.err)
            assert f"port already in use: 127.0.0.1:{taken} ({piece})" in error
            assert "--base-port" in error
            assert "ready" not in "".join(demo.out)
            assert processes_in(demo_dir) == []
        finally:
            demo.close()


@pytest.mark.slow
def test_a_sidecar_that_cannot_listen_is_named_and_everything_stops(tmp_path: Path) -> None:
    demo = DemoRun(tmp_path / "demo")
    try:
        demo.wait_for("starting in")
        # Taken after the demo checked its ports: the frontend sidecar, started once the control
        # plane listens (over a second later), then cannot open its outbound to the backend.
        with socket.socket() as holder:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            holder.bind(("127.0.0.1", demo.base + 30))
            holder.listen()
            assert demo.finish() == 1, demo.text()
        error = "".join(demo.err)
        assert "the frontend-1 sidecar rejected its configuration" in error
        assert str(demo.dir / "logs" / "frontend-1.log") in error
        assert "address already in use" in error
        assert "did not stop on SIGTERM" not in error
        pids = demo.pids()
        assert len(pids) == 7  # everything had started
        assert still_running(list(pids.values())) == []
        assert processes_in(demo.dir) == []
    finally:
        demo.close()


def test_a_base_port_out_of_range_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [*MESHGATE, "demo", "mesh", "--base-port", "65530", "--dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--base-port 65530: must be between 1024 and" in done.stderr
    assert not (tmp_path / "d").exists()
