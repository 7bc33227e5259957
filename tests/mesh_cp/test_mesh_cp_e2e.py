"""End to end with real processes: ``meshgate cp``, three services each behind its own
``meshgate dp --role sidecar``, configured with ``meshgate mesh`` commands."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mesh_cp_procs import Mesh as BaseMesh
from mesh_cp_procs import Proc

from testkit import MESHGATE, free_port

pytestmark = pytest.mark.slow

ECHO = (
    "import asyncio, sys\n"
    "from meshgate.demo.upstreams import start_echo_upstream\n"
    "async def main():\n"
    "    await start_echo_upstream(sys.argv[1], port=int(sys.argv[2]))\n"
    "    await asyncio.Event().wait()\n"
    "asyncio.run(main())\n"
)


class Mesh(BaseMesh):
    """The kit's world, plus echo services started the way a user would."""

    def service(self, name: str, mesh: str, outbounds: dict[str, int]) -> tuple[int, int]:
        """An echo app and its sidecar; returns (app port, sidecar inbound port)."""
        app_port, inbound_port = free_port(), free_port()
        self.procs.append(Proc([sys.executable, "-c", ECHO, name, str(app_port)]))
        if name == "svc-a":  # one through the CLI, the others straight from the API
            token = self.cli("token", "dataplane", "--mesh", mesh, "--name", f"{name}-1").strip()
        else:
            token = self.api("/tokens/dataplane", "POST", {"mesh": mesh, "name": f"{name}-1"})
        (self.tmp / f"{name}.token").write_text(token)
        args = [
            *MESHGATE, "dp", "--role", "sidecar", "--cp", f"https://127.0.0.1:{self.dp_port}",
            "--token", str(self.tmp / f"{name}.token"), "--name", f"{name}-1", "--mesh", mesh,
            "--inbound", f"{name}:{inbound_port}:http:{app_port}",
            "--state-dir", str(self.tmp / f"state-{name}"), "--ca-cert", str(self.tmp / "cp-ca.pem"),
        ]  # fmt: skip
        for target, port in outbounds.items():
            args += ["--outbound", f"{target}:{port}"]
        self.procs.append(Proc(args))
        return app_port, inbound_port


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    world = Mesh(tmp_path)
    world.start_cp()
    yield world
    world.close()


def get(port: int, path: str = "/") -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.status, json.loads(response.read())


def eventually(check: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, AssertionError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"not reached in {timeout}s: {last!r}")


def upstream_of(port: int, path: str = "/") -> str:
    status, body = get(port, path)
    assert status == 200
    return str(body["upstream"])


def three_services(mesh: Mesh, mesh_name: str) -> dict[str, int]:
    """Outbound ports ``a-to-b``, ``a-to-c``, ``b-to-c`` and the inbound port ``b``."""
    ports = {"a-to-b": free_port(), "a-to-c": free_port(), "b-to-c": free_port()}
    mesh.service("svc-c", mesh_name, {})
    _, ports["b"] = mesh.service("svc-b", mesh_name, {"svc-c": ports["b-to-c"]})
    mesh.service("svc-a", mesh_name, {"svc-b": ports["a-to-b"], "svc-c": ports["a-to-c"]})
    return ports


def status_of(port: int) -> int | str:
    """The HTTP status of ``GET /`` on ``port``, or the name of the error instead."""
    try:
        return get(port)[0]
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


def test_three_sidecars_route_traffic_and_survive_a_cp_restart(mesh: Mesh) -> None:
    ports = three_services(mesh, "default")
    assert eventually(lambda: upstream_of(ports["a-to-b"], "/x") == "svc-b")
    assert eventually(lambda: upstream_of(ports["a-to-c"]) == "svc-c")
    assert eventually(lambda: upstream_of(ports["b-to-c"]) == "svc-c")

    listed = mesh.cli("get", "dataplanes")
    assert "svc-a-1" in listed
    assert "svc-b-1" in listed
    assert "svc-c-1" in listed
    assert listed.count("online") == 3  # the STATUS column, from dataplanes+insights
    inspected = mesh.cli("inspect", "dataplane", "svc-a-1", "--rules")
    assert "connected" in inspected
    assert "allow-all-default" in inspected
    overview = mesh.api("/meshes/default/dataplanes/svc-a-1/_overview")["status"]
    first = overview["lastAckedVersion"]
    assert overview["connected"]
    assert first == overview["lastPushedVersion"]

    assert mesh.cp is not None
    mesh.cp.stop()
    # the control plane is down: traffic keeps flowing on the cached snapshots
    assert upstream_of(ports["a-to-b"]) == "svc-b"
    assert upstream_of(ports["b-to-c"]) == "svc-c"
    mesh.start_cp()
    eventually(
        lambda: mesh.api("/meshes/default/dataplanes/svc-a-1/_overview")["status"]["connected"]
    )
    policy = mesh.tmp / "timeout.yaml"
    policy.write_text(
        "type: MeshTimeout\nname: a-timeout\nmesh: default\nspec:\n  targetRef: {kind: Mesh}\n"
        "  to:\n    - targetRef: {kind: Mesh}\n      default: {http: {requestTimeout: 9s}}\n"
    )
    assert "MeshTimeout a-timeout created" in mesh.cli("apply", "-f", str(policy))

    def next_version_acked() -> bool:
        status = mesh.api("/meshes/default/dataplanes/svc-a-1/_overview")["status"]
        return status["lastAckedVersion"] not in (None, first)

    eventually(next_version_acked)
    config = mesh.api("/meshes/default/dataplanes/svc-a-1/_config")
    timeouts = {s["name"]: s.get("request_timeout_ms") for s in config["services"]}
    assert timeouts["svc-b"] == 9000
    assert upstream_of(ports["a-to-b"]) == "svc-b"


def test_mtls_mesh_issues_identities_and_routes_over_mtls(mesh: Mesh) -> None:
    spec = mesh.tmp / "secure.yaml"
    spec.write_text(
        "type: Mesh\nname: secure\nmtls:\n  enabledBackend: ca-1\n"
        "  backends: [{name: ca-1, type: builtin}]\n"
    )
    mesh.cli("apply", "-f", str(spec))
    ports = three_services(mesh, "secure")

    def acked(name: str) -> bool:
        status = mesh.api(f"/meshes/secure/dataplanes/{name}/_overview")["status"]
        return bool(status["lastAckedVersion"]) and status["certificate"] is not None

    for name in ("svc-a-1", "svc-b-1", "svc-c-1"):
        eventually(lambda name=name: acked(name))  # type: ignore[misc]
    # each serving sidecar holds its snapshot as msgspec Structs: pydantic is never loaded
    sidecars = [p.proc.pid for p in mesh.procs if "dp" in p.proc.args]  # type: ignore[operator]
    assert len(sidecars) == 3
    for pid in sidecars:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "msgspec/_core" in maps
        assert "pydantic_core" not in maps
    config = mesh.api("/meshes/secure/dataplanes/svc-b-1/_config")
    inbound = next(ln for ln in config["listeners"] if ln["name"].startswith("inbound:"))
    assert inbound["mtls"]["certificate"] == "mesh-workload"
    assert upstream_of(ports["a-to-b"]) == "svc-b"
    assert upstream_of(ports["b-to-c"]) == "svc-c"
    # the inbound speaks mTLS only: a plain HTTP client gets no answer
    assert status_of(ports["b"]) != 200
