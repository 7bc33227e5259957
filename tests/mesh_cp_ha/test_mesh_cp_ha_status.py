"""Dataplane status across replicas, in process on SQLite and PostgreSQL: what the holding
replica learns (ACK, NACK, certificate) is stored once per change, only while it holds the
session, and every other replica's Mesh API view shows it; a replica that takes a dataplane
over continues from the stored status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from mesh_cp_ha_fakes import MESH, Replica, make_csr, replicas
from mesh_cp_ha_kit import store_url_for

from meshgate.controlplane.distribution import inspect
from meshgate.controlplane.distribution.status_records import FEW, STATUS_TYPE
from meshgate.controlplane.distribution.storage import delete_resource

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.services)]
KEY = (MESH, "web")


async def _eventually(check: Any, timeout: float = 10) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await check()
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.02)


async def _view(replica: Replica) -> dict[str, Any]:
    return await inspect.overview(replica.engine, *KEY)


@pytest.mark.parametrize("kind", KINDS)
def test_status_learnt_by_one_replica_is_shown_by_another(tmp_path: Path, kind: str) -> None:
    async def scenario(url: str) -> None:
        async with replicas(url, "cp-a", "cp-b", status_flush_delay=3600) as (a, b):
            sidecar = await a.admit("web", make_csr())
            assert sidecar.session is not None
            assert sidecar.versions
            version = sidecar.versions[-1]
            for _ in range(5):  # the same ACK again is no change
                a.engine.acked(sidecar.session, version)
            await a.engine.status_log.flush()
            assert a.engine.status_log.writes == 1  # first push's certificate and the ACK
            await b.engine.reload()  # sees cp-a's session record
            seen = await _view(b)
            held = await _view(a)
            assert (seen["state"], seen["controlPlane"]) == ("online", "cp-a")
            assert seen["lastAckedVersion"] == version == held["lastAckedVersion"]
            assert seen["lastPushedVersion"] == version
            assert seen["certificate"]["serial"] == held["certificate"]["serial"]
            assert seen["certificate"]["serial"] == a.engine.statuses[KEY].cert_serial
            assert seen["certificate"]["expiration"] == held["certificate"]["expiration"]
            held_serial = held["certificate"]["serial"]
            assert seen["lastNack"] is None

            a.engine.acked(sidecar.session, "v-2")  # an ACK alone is written too
            assert await a.engine.status_log.flush() == 1
            assert (await _view(b))["lastAckedVersion"] == "v-2"
            assert await a.engine.status_log.flush() == 0  # nothing new

            a.engine.nacked(sidecar.session, "v-bad", "listener port taken")
            await a.engine.status_log.flush()
            assert a.engine.status_log.writes == 3
            nack = (await _view(b))["lastNack"]
            assert (nack["version"], nack["error"]) == ("v-bad", "listener port taken")

            # a renewed certificate is written before any ACK of it
            a.clock.advance(23 * 3600)  # past 2/3 of the default 24 h
            assert await a.engine.check_rotation() == 1
            await a.engine.status_log.flush()
            assert a.engine.status_log.writes == 4
            renewed = (await _view(b))["certificate"]
            assert renewed["serial"] == a.engine.statuses[KEY].cert_serial != held_serial
            assert renewed["regenerations"] == 1
            assert (await _view(b))["lastPushedVersion"] == sidecar.versions[-1] != "v-2"

            # the sidecar leaves cp-a without a bye: the last status stays in the store
            a.engine.nacked(sidecar.session, "v-last", "still broken")
            await a.engine.disconnected(sidecar.session, graceful=False)
            assert a.engine.status_log.writes == 4  # written by the release, not the log
            await b.engine.reload()
            offline = await _view(b)
            assert offline["state"] == "offline"
            assert offline["lastNack"]["version"] == "v-last"
            assert offline["lastAckedVersion"] == "v-2"

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))


@pytest.mark.parametrize("kind", KINDS)
def test_statuses_are_written_in_the_background(tmp_path: Path, kind: str) -> None:
    async def scenario(url: str) -> None:
        async with replicas(url, "cp-a", "cp-b", status_flush_delay=0.01) as (a, b):
            sidecar = await a.admit("web", make_csr())
            assert sidecar.session is not None
            a.engine.acked(sidecar.session, sidecar.versions[-1])

            async def acked_at_b() -> bool:
                return bool((await _view(b))["lastAckedVersion"] == sidecar.versions[-1])

            assert await _eventually(acked_at_b)
            assert not a.engine.status_log.dirty

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))


@pytest.mark.parametrize("kind", KINDS)
def test_only_the_replica_holding_the_session_writes_its_status(tmp_path: Path, kind: str) -> None:
    async def scenario(url: str) -> None:
        async with replicas(url, "cp-a", "cp-b", status_flush_delay=3600) as (a, b):
            csr = make_csr()
            old = await a.admit("web", csr)
            assert old.session is not None
            first = old.versions[-1]
            a.engine.acked(old.session, first)
            assert await a.engine.status_log.flush() == 1
            regenerations = a.engine.statuses[KEY].cert_regenerations

            # the sidecar moves to cp-b, which continues from the stored status
            moved = await b.admit("web", csr)
            assert moved.session is not None
            taken = b.engine.statuses[KEY]
            assert taken.acked_version == first
            assert taken.cert_regenerations == regenerations
            assert taken.connected

            # cp-a has not noticed yet: what its old session reports is not written
            a.engine.nacked(old.session, "stale", "from a session cp-a lost")
            assert await a.engine.status_log.flush() == 0
            stored = await a.store.get(STATUS_TYPE, f"{MESH}/web")
            assert stored is not None
            assert stored["cp"] == "cp-a"
            assert stored["nack"] is None
            a.engine.nacked(old.session, "stale-2", "noted as cp-a's session ends")
            await a.engine.disconnected(old.session, graceful=False)  # not held: nothing
            stored = await a.store.get(STATUS_TYPE, f"{MESH}/web")
            assert stored is not None
            assert stored["nack"] is None

            b.engine.acked(moved.session, "v-at-b")
            assert await b.engine.status_log.flush() == 1
            await a.engine.reload()
            seen = await _view(a)
            assert (seen["controlPlane"], seen["lastAckedVersion"]) == ("cp-b", "v-at-b")
            assert seen["lastNack"] is None

            # a bye deletes the Dataplane and its status
            await b.engine.disconnected(moved.session, graceful=True)
            assert await b.store.get(STATUS_TYPE, f"{MESH}/web") is None

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))


@pytest.mark.parametrize("kind", KINDS)
def test_a_page_of_dataplanes_held_elsewhere_shows_their_statuses(
    tmp_path: Path, kind: str
) -> None:
    async def scenario(url: str) -> None:
        async with replicas(url, "cp-a", "cp-b", status_flush_delay=3600) as (a, b):
            names = [f"web-{i:02d}" for i in range(FEW + 5)]  # more than are read one by one
            csr = make_csr()
            for name in names:
                sidecar = await a.admit(name, csr)
                assert sidecar.session is not None
                a.engine.acked(sidecar.session, f"v-{name}")
            await a.engine.status_log.flush()
            held_at_b = await b.admit("elsewhere", csr)  # one of the page held by cp-b itself
            assert held_at_b.session is not None
            b.engine.acked(held_at_b.session, "v-b")
            await b.engine.reload()
            views = await inspect.overviews(b.engine, MESH, [*names, "elsewhere", "nobody"])
            acked = [view["lastAckedVersion"] for view in views]
            assert acked == [*(f"v-{name}" for name in names), "v-b", None]
            assert [view["controlPlane"] for view in views[:-1]] == ["cp-a"] * len(names) + ["cp-b"]
            assert (
                views[0]["certificate"]["serial"] == a.engine.statuses[(MESH, "web-00")].cert_serial
            )

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))


def test_a_replica_alone_writes_statuses_less_often(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        async with replicas(url, "cp-a", status_flush_delay=0.01) as (a,):
            sidecar = await a.admit("web", make_csr())
            assert sidecar.session is not None
            a.engine.acked(sidecar.session, sidecar.versions[-1])
            await asyncio.sleep(0.3)  # well before the quiet second a lone replica waits for
            assert a.engine.status_log.writes == 0
            assert await _eventually(_written(a), timeout=5)
            stored = await a.store.get(STATUS_TYPE, f"{MESH}/web")
            assert stored is not None
            assert stored["ackedVersion"] == sidecar.versions[-1]

    with store_url_for("sqlite", tmp_path) as url:
        asyncio.run(scenario(url))


def _written(replica: Replica) -> Any:
    async def check() -> bool:
        return replica.engine.status_log.writes == 1

    return check


@pytest.mark.parametrize("kind", KINDS)
def test_a_status_of_a_deleted_dataplane_is_not_written_back(tmp_path: Path, kind: str) -> None:
    async def scenario(url: str) -> None:
        async with replicas(url, "cp-a", status_flush_delay=3600) as (a,):
            sidecar = await a.admit("web", make_csr())
            assert sidecar.session is not None
            a.engine.acked(sidecar.session, sidecar.versions[-1])
            assert await a.engine.status_log.flush() == 1
            assert await a.store.get(STATUS_TYPE, f"{MESH}/web") is not None

            # the Dataplane is deleted while its session lasts; its next status is not stored
            assert await delete_resource(a.store, "dataplanes", MESH, "web")
            assert await a.store.get(STATUS_TYPE, f"{MESH}/web") is None
            a.engine.nacked(sidecar.session, "v-after", "deleted meanwhile")
            await a.engine.status_log.flush()
            assert await a.store.get(STATUS_TYPE, f"{MESH}/web") is None

            # a record left by a race with the deletion goes with the next status
            await a.store.upsert(STATUS_TYPE, f"{MESH}/web", {"id": f"{MESH}/web", "mesh": MESH},
                                 unique_keys=())  # fmt: skip
            a.engine.acked(sidecar.session, "v-later")
            await a.engine.status_log.flush()
            assert await a.store.get(STATUS_TYPE, f"{MESH}/web") is None

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))
