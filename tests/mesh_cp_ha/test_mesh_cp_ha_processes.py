"""Two ``meshgate cp`` replicas on one store, as separate processes, with ``meshgate dp``
sidecars on each: changes through one reach the other's sidecars, neither records the
other's dataplanes offline, a killed replica's dataplanes go offline from its last heartbeat
or fail over to the survivor, and replicas started together share one DP server certificate."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mesh_cp_ha_kit import (
    DEAD_AFTER,
    GRACE,
    HEARTBEAT,
    cluster,
    snapshot_of,
    store_url_for,
)

from meshgate.store import Store, open_store
from testkit import eventually, free_port, fresh_pg_schema, pg_dsn

TIMEOUT_SPEC = {
    "targetRef": {"kind": "Mesh"},
    "to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "7s"}}}],
}


def _online_at(status: dict[str, Any] | None, cp: str) -> bool:
    return bool(status and status["state"] == "online" and status["controlPlane"] == cp)


def _service_timeout(state: Path, service: str) -> int | None:
    snap = snapshot_of(state)
    found = [s.get("request_timeout_ms") for s in snap["services"] if s["name"] == service]
    return found[0] if found else None


def _endpoints(state: Path, service: str) -> list[Any]:
    if not (state / "snapshot.json").exists():
        return []
    clusters = snapshot_of(state)["clusters"]
    return [e for c in clusters if c["name"] == f"mesh:{service}" for e in c["endpoints"]]


def _peer_cert(port: int) -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    import socket

    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


async def _count(url: str, kind: str) -> int:
    store: Store = await open_store(url)
    try:
        return len((await store.list(kind, size=1000)).data)
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def test_a_policy_through_one_replica_reaches_sidecars_of_the_other(
    tmp_path: Path, kind: str
) -> None:
    import asyncio

    with store_url_for(kind, tmp_path) as url, cluster(tmp_path, url) as mesh:
        mesh.start("cp-a", "cp-b")  # at once: default mesh and DP certificate created once
        a, b = mesh.replicas["cp-a"], mesh.replicas["cp-b"]
        assert _peer_cert(a.dp_port) == _peer_cert(b.dp_port)
        assert (tmp_path / "cp-a-ca.pem").read_text() == (tmp_path / "cp-b-ca.pem").read_text()
        mesh.sidecar("dp-a", [a], ("svc-a", free_port()), {"svc-b": free_port()})
        state_b = mesh.sidecar("dp-b", [b], ("svc-b", free_port()), {"svc-a": free_port()})
        eventually(
            lambda: _online_at(b.status("dp-b"), "cp-b") and (state_b / "snapshot.json").exists()
        )
        eventually(lambda: _online_at(a.status("dp-a"), "cp-a"))
        # every replica shows the other's dataplanes online, held by the other
        eventually(lambda: _online_at(a.status("dp-b"), "cp-b"))
        eventually(lambda: _online_at(b.status("dp-a"), "cp-a"))
        assert _service_timeout(state_b, "svc-a") != 7000

        a.api("/meshes/default/meshtimeouts/a-timeout", "PUT", {"spec": TIMEOUT_SPEC})
        eventually(lambda: _service_timeout(state_b, "svc-a") == 7000)
        acked = eventually(
            lambda: b.status("dp-b")["lastAckedVersion"] == snapshot_of(state_b)["version"]
        )
        assert acked

        # well past both replicas' reconnect grace: nobody recorded the other's dataplanes
        time.sleep(max(0.0, GRACE * 3))
        assert asyncio.run(_count(url, "mesh_dp_offline")) == 0
        assert asyncio.run(_count(url, "mesh_cp_tls")) == 1
        assert asyncio.run(_count(url, "mesh.meshes")) == 1
        assert _online_at(a.status("dp-b"), "cp-b")
        assert _online_at(b.status("dp-a"), "cp-a")


@pytest.mark.services
def test_a_killed_replica_s_dataplanes_go_offline_or_fail_over(tmp_path: Path) -> None:
    with fresh_pg_schema(pg_dsn(), "mg_cp_ha") as url, cluster(tmp_path, url) as mesh:
        mesh.start("cp-a", "cp-b")
        a, b = mesh.replicas["cp-a"], mesh.replicas["cp-b"]
        mesh.sidecar("stuck", [b], ("svc-s", free_port()), {})
        mover_state = mesh.sidecar("mover", [b, a], ("svc-m", free_port()), {"svc-s": free_port()})
        eventually(lambda: _online_at(a.status("stuck"), "cp-b"))
        eventually(lambda: _online_at(a.status("mover"), "cp-b"))
        # the mover's snapshot holds the stuck one's endpoint: nothing more will change it
        eventually(lambda: _endpoints(mover_state, "svc-s"))
        served = snapshot_of(mover_state)["version"]

        killed_at = time.time()
        assert b.proc is not None
        b.proc.kill()
        # the sidecar given both addresses is admitted by the survivor
        eventually(lambda: _online_at(a.status("mover"), "cp-a"), timeout=10)
        assert snapshot_of(mover_state)["version"] == served  # same config: same version
        # the other one is offline once cp-b's heartbeat is stale, since that heartbeat
        status = eventually(
            lambda: (s := a.status("stuck")) and s["state"] == "offline" and s, timeout=10
        )
        assert time.time() - killed_at >= DEAD_AFTER - 2 * HEARTBEAT  # not before it is stale
        assert status["controlPlane"] in ("cp-b", None)
        assert killed_at - 2 * HEARTBEAT - 0.5 <= status["disconnectedAt"] <= killed_at + 0.1

        # the survivor's next heartbeat turns the dead replica's session into an offline record
        def records() -> tuple[list[Any], list[Any]] | None:
            with psycopg.connect(url) as conn:
                offline = conn.execute(
                    "SELECT id, doc->>'since' FROM entities WHERE type = 'mesh_dp_offline'"
                ).fetchall()
                sessions = conn.execute(
                    "SELECT id, doc->>'cp' FROM entities WHERE type = 'mesh_dp_session'"
                ).fetchall()
            return (offline, sessions) if offline else None

        rows, sessions = eventually(records, timeout=5)
        assert [r[0] for r in rows] == ["default/stuck"]
        assert abs(float(rows[0][1]) - status["disconnectedAt"]) < 1e-6
        assert sorted(sessions) == [("default/mover", "cp-a")]
