"""``meshgate demo mesh`` as a user runs it: one demo for the module, checked with real HTTP
and TLS on the documented ports (offsets from ``--base-port``) and the guide's own commands."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mesh_demo_kit import (
    DemoRun,
    get,
    plain_http_answer,
    processes_in,
    tls_without_client_cert,
    uri_sans,
)

pytestmark = pytest.mark.slow

SERVICES = ("frontend", "backend", "db")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path_factory.mktemp("mesh-demo"))
    try:
        run.wait_for("ready")
        yield run
    finally:
        run.close()


def test_frontend_reaches_the_backend_app_through_both_sidecars(demo: DemoRun) -> None:
    status, headers, body = get(demo.base + 30, "/hello")  # frontend -> backend
    assert status == 200
    assert body["upstream"] == "backend"
    assert body["url"] == "/hello"
    # the backend app was reached through its sidecar's TLS inbound, not straight
    assert body["headers"]["x-forwarded-proto"] == "https"
    assert body["headers"]["x-forwarded-port"] == str(demo.base + 21)
    assert headers["x-upstream"] == "backend"
    for port, service in ((demo.base + 31, "db"), (demo.base + 32, "db")):
        assert get(port)[2]["upstream"] == service


def test_every_app_names_its_service(demo: DemoRun) -> None:
    for offset, service in enumerate(SERVICES):
        status, _, body = get(demo.base + 10 + offset)
        assert (status, body["upstream"]) == (200, service)


def test_sidecar_inbounds_speak_mtls_only(demo: DemoRun) -> None:
    for offset, service in enumerate(SERVICES):
        port = demo.base + 20 + offset
        assert plain_http_answer(port) == b"", f"{service}'s inbound answered plain HTTP"
        cert, answer = tls_without_client_cert(port)
        assert f"spiffe://default/{service}" in uri_sans(cert)
        assert answer == b"", f"{service}'s inbound answered a client without a certificate"


def test_guide_names_every_child_and_its_commands_work(demo: DemoRun) -> None:
    pids = demo.pids()
    assert set(pids) == {"cp", *(f"app-{s}" for s in SERVICES), *(f"{s}-1" for s in SERVICES)}
    assert sorted(processes_in(demo.dir)) == sorted(pids.values())
    # each leads its own process group: a terminal's Ctrl-C reaches only the demo, which then
    # stops them in order
    assert all(os.getpgid(pid) == pid for pid in pids.values())
    guide = "".join(demo.out)
    for pid in pids.values():
        assert f"pid {pid} " in guide
    assert f"Mesh API http://127.0.0.1:{demo.base}" in guide
    listed = subprocess.run(
        demo.guide_command("mesh get dataplanes"), capture_output=True, text=True, timeout=30
    )
    assert listed.returncode == 0, listed.stderr
    for service in SERVICES:
        assert f"{service}-1" in listed.stdout
    assert listed.stdout.count("online") == 3
    rules = subprocess.run(
        demo.guide_command("inspect dataplane db-1 --rules"),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert rules.returncode == 0, rules.stderr
    assert "dataplane default/db-1" in rules.stdout
    assert "MeshTrafficPermission" in rules.stdout


def test_mesh_has_builtin_mtls(demo: DemoRun) -> None:
    _, _, mesh = get(demo.base, "/meshes/default")
    assert mesh["mtls"]["enabledBackend"] == "ca-1"
    assert mesh["mtls"]["backends"][0]["type"] == "builtin"


def test_work_dir_holds_logs_tokens_and_the_deny_example(demo: DemoRun) -> None:
    logs = {path.name for path in (demo.dir / "logs").iterdir()}
    assert logs == {f"{key}.log" for key in demo.pids()}
    assert (demo.dir / "deny.yaml").read_text().startswith("type: MeshTrafficPermission")
    assert Path(demo.dir / "mesh.db").exists()
