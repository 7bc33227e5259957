"""Replicas on one store, in one process with one store connection each (so PostgreSQL runs
their transactions concurrently): things generated once are generated once, the cleanup never
deletes what a live replica holds, and a dead replica's dataplanes are offline from its last
heartbeat, then deleted after the cleanup age."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mesh_cp_ha_kit import store_url_for

from meshgate.controlplane.ca import MeshCA, StoreCAStorage
from meshgate.controlplane.ca.manager import utc_now
from meshgate.controlplane.distribution import DataplaneTokens, DistributionEngine, inspect, upkeep
from meshgate.controlplane.distribution.liveness import SESSION_TYPE
from meshgate.controlplane.distribution.offline import OFFLINE_TYPE, offline_doc
from meshgate.controlplane.distribution.replicas import Replicas
from meshgate.controlplane.distribution.status_records import STATUS_TYPE
from meshgate.controlplane.distribution.storage import ensure_mesh, put_resource
from meshgate.policies import parse_resource
from meshgate.resources.mesh.mesh import Mesh
from meshgate.store import Store, open_store

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.services)]
DATAPLANES = "mesh.dataplanes"
MTLS = {"enabledBackend": "ca-1", "backends": [{"name": "ca-1", "type": "builtin"}]}


@dataclass
class Clock:
    now: datetime.datetime = field(default_factory=utc_now)

    def __call__(self) -> datetime.datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def dataplane(name: str, port: int = 9000) -> Any:
    return parse_resource({
        "type": "Dataplane", "name": name, "mesh": "default",
        "networking": {"address": "127.0.0.1", "inbound": [
            {"port": port, "tags": {"kuma.io/service": name, "kuma.io/protocol": "http"}}]},
    })  # fmt: skip


async def stores(url: str, count: int) -> list[Store]:
    return [await open_store(url) for _ in range(count)]


async def close_all(opened: list[Store]) -> None:
    for store in opened:
        await store.close()


@pytest.mark.parametrize("kind", KINDS)
def test_replicas_starting_together_make_one_root_one_key_one_mesh(
    tmp_path: Path, kind: str
) -> None:
    async def scenario(url: str) -> None:
        opened = await stores(url, 3)
        try:
            created = await asyncio.gather(*(ensure_mesh(s) for s in opened))
            assert sorted(created) == [False, False, True]
            meshes = []
            for name in ("m1", "m2", "m3"):
                mesh = parse_resource({"type": "Mesh", "name": name, "mtls": MTLS})
                assert isinstance(mesh, Mesh)
                meshes.append(mesh)
            cas = [MeshCA(StoreCAStorage(s)) for s in opened]
            backend = meshes[0].enabled_backend()
            assert backend is not None
            for mesh in meshes:
                roots = await asyncio.gather(*(ca.root_for(mesh, backend) for ca in cas * 2))
                assert len({root.cert for root in roots}) == 1
                assert len({root.key for root in roots}) == 1
            assert len((await opened[0].list("mesh_ca")).data) == 3
            token_sets = [DataplaneTokens(s) for s in opened]
            issued = await asyncio.gather(*(t.issue("m1") for t in token_sets))
            for token in issued:  # whoever issued it, every replica admits it
                for tokens in token_sets:
                    assert (await tokens.verify(token)).mesh == "m1"
            assert len((await opened[0].list("mesh_dp_signing_key")).data) == 1
        finally:
            await close_all(opened)

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))


@pytest.mark.parametrize("kind", KINDS)
def test_cleanup_racing_admissions_and_other_cleaners_stays_consistent(
    tmp_path: Path, kind: str
) -> None:
    async def scenario(url: str) -> None:
        opened = await stores(url, 3)
        try:
            await ensure_mesh(opened[0])
            now = utc_now().timestamp()
            cleaners = [
                Replicas(s, instance_id=f"cp-{i}", clock=lambda: now, dead_after=3)
                for i, s in enumerate(opened[:2])
            ]
            admitting = Replicas(opened[2], instance_id="cp-x", clock=lambda: now, dead_after=3)
            await admitting.beat()
            for replica in cleaners:
                await replica.load()
            wins = 0
            for i in range(12):
                key = ("default", f"dp-{i}")
                async with opened[0].transaction() as tx:
                    await put_resource(tx, dataplane(key[1]))
                    await tx.upsert(
                        OFFLINE_TYPE, f"default/{key[1]}", offline_doc(key, now - 1000),
                        unique_keys=(),
                    )  # fmt: skip

                async def admit(key: tuple[str, str] = key) -> None:
                    async with opened[2].transaction() as tx:
                        await admitting.claim(tx, key, now)
                        await put_resource(tx, dataplane(key[1]))

                jobs = [r.delete_expired(key, now, 60) for r in cleaners]
                outcome = await asyncio.gather(*jobs, admit())
                assert outcome[:2].count(True) <= 1
                wins += outcome[:2].count(True)
                # the admission always ends with its dataplane and its session
                assert await opened[0].get(SESSION_TYPE, f"default/{key[1]}") is not None
                assert await opened[0].get(DATAPLANES, f"default/{key[1]}") is not None
                assert await opened[0].get(OFFLINE_TYPE, f"default/{key[1]}") is None
            # a record written again after the judgement is not taken for the old one
            key = ("default", "again")
            async with opened[0].transaction() as tx:
                await put_resource(tx, dataplane("again"))
                await tx.upsert(OFFLINE_TYPE, "default/again", offline_doc(key, now - 1000),
                                unique_keys=())  # fmt: skip
            assert await cleaners[0].delete_expired(key, now, 60)
            assert await opened[0].get(DATAPLANES, "default/again") is None
            assert not await cleaners[1].delete_expired(key, now, 60)  # already gone
            # a stale record beside the session of a live replica: the dataplane stays
            key = ("default", "stale")
            async with opened[2].transaction() as tx:
                await admitting.claim(tx, key, now)
                await put_resource(tx, dataplane("stale"))
                await tx.upsert(OFFLINE_TYPE, "default/stale", offline_doc(key, now - 1000),
                                unique_keys=())  # fmt: skip
            assert not await cleaners[0].delete_expired(key, now, 60)
            assert await opened[0].get(DATAPLANES, "default/stale") is not None
            assert await opened[0].get(OFFLINE_TYPE, "default/stale") is None
        finally:
            await close_all(opened)

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))


@pytest.mark.parametrize("kind", KINDS)
def test_dataplanes_of_live_replicas_are_kept_and_of_dead_ones_expire(
    tmp_path: Path, kind: str
) -> None:
    async def scenario(url: str) -> None:
        opened = await stores(url, 3)
        store_a, store_b, store_c = opened
        clock = Clock()
        t0 = clock.timestamp()
        beats = {"cp-b": t0, "cp-c": t0}
        try:
            await ensure_mesh(store_a)
            others = {
                name: Replicas(store, instance_id=name, clock=lambda n=name: beats[n], dead_after=3)
                for name, store in (("cp-b", store_b), ("cp-c", store_c))
            }
            for name, dp in (("cp-b", "kept"), ("cp-c", "lost")):
                await others[name].beat()
                async with others[name].store.transaction() as tx:
                    await others[name].claim(tx, ("default", dp), t0)
                    await put_resource(tx, dataplane(dp))
            engine = DistributionEngine(
                store_a, ca=MeshCA(StoreCAStorage(store_a), clock=clock),
                tokens=DataplaneTokens(store_a), clock=clock, instance_id="cp-a",
                heartbeat_interval=3600, dead_after=3, reconnect_grace=0.05,
                offline_cleanup_age=60, offline_check_interval=3600,
                rotation_check_interval=3600,
            )  # fmt: skip
            await engine.start()
            try:
                await asyncio.sleep(0.3)  # past the reconnect grace
                assert await engine.mark_unclaimed(t0) == []
                assert (await store_a.list(OFFLINE_TYPE)).data == []
                kept, lost = (
                    await inspect.overview(engine, "default", "kept"),
                    await inspect.overview(engine, "default", "lost"),
                )
                assert (kept["state"], kept["controlPlane"]) == ("online", "cp-b")
                assert (lost["state"], lost["controlPlane"]) == ("online", "cp-c")
                assert kept["connectedAt"] == t0

                # cp-b keeps beating, cp-c stopped at t0
                clock.advance(10)
                beats["cp-b"] = clock.timestamp()
                await others["cp-b"].beat()
                await engine.reload()
                assert (await inspect.overview(engine, "default", "kept"))["state"] == "online"
                lost = await inspect.overview(engine, "default", "lost")
                assert (lost["state"], lost["disconnectedAt"]) == ("offline", t0)
                await upkeep.heartbeat(engine)  # reaps cp-c's session into an offline record
                assert await store_a.get(SESSION_TYPE, "default/lost") is None
                assert (await store_a.get(OFFLINE_TYPE, "default/lost") or {})["since"] == t0
                assert await store_a.get(SESSION_TYPE, "default/kept") is not None
                assert await store_a.get("mesh_cp_instance", "cp-c") is None  # holds nothing

                clock.advance(40)  # 50 s offline: younger than the cleanup age
                beats["cp-b"] = clock.timestamp()
                await others["cp-b"].beat()
                await engine.reload()
                assert await engine.cleanup_offline() == []
                clock.advance(11)
                beats["cp-b"] = clock.timestamp()
                await others["cp-b"].beat()
                await engine.reload()
                lost_status = {
                    "id": "default/lost",
                    "mesh": "default",
                    "name": "lost",
                    "cp": "cp-c",
                }
                await store_a.upsert(STATUS_TYPE, "default/lost", lost_status, unique_keys=())
                assert await engine.cleanup_offline() == [("default", "lost")]
                assert await store_a.get(DATAPLANES, "default/lost") is None
                assert await store_a.get(STATUS_TYPE, "default/lost") is None  # goes with it
                assert await store_a.get(DATAPLANES, "default/kept") is not None
                assert (await inspect.overview(engine, "default", "kept"))["state"] == "online"
            finally:
                await engine.stop()
        finally:
            await close_all(opened)

    with store_url_for(kind, tmp_path) as url:
        asyncio.run(scenario(url))
