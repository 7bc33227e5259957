"""Dataplanes that vanish without a ``bye``: shown offline with their disconnect time, deleted
once offline longer than the cleanup age (a tiny one here, with the CP's clock moved)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mesh_cp_fakes import CSR
from mesh_cp_kit import ControlPlane, call, control_plane, dataplane_doc, eventually, start_cp

from meshgate.agent.dataplane.protocol import PROTOCOL_VERSION, MessageDecoder, message
from meshgate.controlplane.distribution.offline import parse_age
from meshgate.store import open_store
from meshgate.tasks import spawn

AGE = 60.0
OFFLINE = "mesh_dp_offline"


@dataclass
class RawSidecar:
    """A bare ``mgdp/1`` client: ACKs nothing, keeps every message."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    messages: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def snapshots(self) -> list[dict[str, Any]]:
        return [m["snapshot"] for m in self.messages if m["type"] == "snapshot"]

    async def vanish(self) -> None:
        """Drop the connection without a word."""
        self.writer.transport.abort()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)

    async def bye(self) -> None:
        self.writer.write(message("bye"))
        await self.writer.drain()
        self.writer.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)


async def connect(cp: ControlPlane, doc: dict[str, Any]) -> RawSidecar:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", cp.dp_port, ssl=context)
    token = await cp.tokens.issue("default")
    writer.write(
        message("hello", protocol=PROTOCOL_VERSION, token=token, dataplane=doc, csr=CSR,
                running=None)
    )  # fmt: skip
    sidecar = RawSidecar(reader, writer)

    async def read() -> None:
        decoder = MessageDecoder()
        while data := await reader.read(1 << 16):
            sidecar.messages.extend(decoder.feed(data))

    sidecar.task = spawn(read(), name=f"raw-{doc['name']}")
    await eventually(lambda: sidecar.snapshots())
    return sidecar


def _endpoint_ports(snap: dict[str, Any], service: str) -> set[int]:
    clusters = [c for c in snap["clusters"] if c["name"] == f"mesh:{service}"]
    return {e["port"] for c in clusters for e in c["endpoints"]}


async def _status(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    response = await call(cp, "GET", f"/meshes/default/dataplanes/{name}/_overview")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()["status"]
    return status


def test_a_vanished_dataplane_is_offline_then_deleted_after_the_cleanup_age(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        options = {"offline_cleanup_age": AGE, "offline_check_interval": 0.02}
        async with control_plane(tmp_path, **options) as cp:
            web = await connect(cp, dataplane_doc("web-1", outbounds=[("backend", 15001)]))
            gone = await connect(cp, dataplane_doc("backend-1", inbounds=[("backend", 9001, 81)]))
            back = await connect(cp, dataplane_doc("backend-2", inbounds=[("backend", 9002, 82)]))
            polite = await connect(cp, dataplane_doc("backend-3", inbounds=[("backend", 9003, 83)]))
            await eventually(
                lambda: _endpoint_ports(web.snapshots()[-1], "backend") == {9001, 9002, 9003}
            )

            left_at = cp.clock.now.timestamp()
            await gone.vanish()
            await back.vanish()
            await polite.bye()
            status = await eventually(lambda: _offline(cp, "backend-1"))
            assert status["disconnectedAt"] == left_at
            assert status["connected"] is False
            # a bye still removes the dataplane at once
            await eventually(lambda: _missing(cp, "backend-3"))
            await eventually(
                lambda: _endpoint_ports(web.snapshots()[-1], "backend") == {9001, 9002}
            )
            # backend-2 comes back: no longer offline, its record is dropped
            back = await connect(cp, dataplane_doc("backend-2", inbounds=[("backend", 9002, 82)]))
            assert (await _status(cp, "backend-2") or {}).get("state") == "online"
            assert await cp.store.get(OFFLINE, "default/backend-2") is None

            cp.clock.now += datetime.timedelta(seconds=AGE / 2)
            await asyncio.sleep(0.2)  # ten checks: too young to go
            assert await cp.store.get("mesh.dataplanes", "default/backend-1") is not None

            cp.clock.now += datetime.timedelta(seconds=AGE)
            await eventually(lambda: _missing(cp, "backend-1"))
            assert await cp.store.get(OFFLINE, "default/backend-1") is None
            assert "backend-1" not in cp.engine.state.dataplanes.get("default", {})
            await eventually(lambda: _endpoint_ports(web.snapshots()[-1], "backend") == {9002})
            # the connected ones stay, however old
            assert await _status(cp, "backend-2") is not None
            assert await _status(cp, "web-1") is not None
            await web.bye()
            await back.bye()

    asyncio.run(scenario())


def test_a_restarted_cp_remembers_when_a_dataplane_went_offline(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            left_at = cp.clock.now.timestamp()
            gone = await connect(cp, dataplane_doc("backend-1", inbounds=[("backend", 9001, 81)]))
            await gone.vanish()
            await eventually(lambda: _offline(cp, "backend-1"))
        store = await open_store(f"sqlite:///{tmp_path}/cp.db")
        cp = await start_cp(store, offline_cleanup_age=AGE, offline_check_interval=3600)
        try:
            status = await _status(cp, "backend-1")
            assert status is not None
            assert status["state"] == "offline"
            assert status["disconnectedAt"] == left_at
            assert await cp.engine.cleanup_offline() == []
            cp.clock.now += datetime.timedelta(seconds=AGE + 1)
            assert await cp.engine.cleanup_offline() == [("default", "backend-1")]
            assert await _status(cp, "backend-1") is None
        finally:
            await cp.stop()
            await store.close()

    asyncio.run(scenario())


def test_dataplanes_of_a_crashed_cp_that_do_not_come_back_are_recorded_offline(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with control_plane(tmp_path) as cp:
            for name, port in (("backend-1", 9001), ("backend-2", 9002)):
                sidecar = await connect(cp, dataplane_doc(name, inbounds=[("backend", port, 81)]))
                await sidecar.vanish()
                await eventually(lambda name=name: _offline(cp, name))
        store = await open_store(f"sqlite:///{tmp_path}/cp.db")
        for name in ("backend-1", "backend-2"):  # a crash: nobody saw them leave
            assert await store.delete(OFFLINE, f"default/{name}")
        cp = await start_cp(
            store, offline_cleanup_age=AGE, offline_check_interval=3600, reconnect_grace=0.5
        )
        try:
            restarted_at = cp.clock.now.timestamp()
            back = await connect(cp, dataplane_doc("backend-2", inbounds=[("backend", 9002, 81)]))
            before = await _status(cp, "backend-1")
            assert before is not None
            assert before["disconnectedAt"] is None  # not judged before the grace ends
            status = await eventually(lambda: _recorded_offline(cp, "backend-1"))
            assert status["state"] == "offline"
            assert status["disconnectedAt"] == restarted_at
            assert await store.get(OFFLINE, "default/backend-1") is not None
            assert (await _status(cp, "backend-2") or {}).get("state") == "online"
            assert await store.get(OFFLINE, "default/backend-2") is None
            cp.clock.now += datetime.timedelta(seconds=AGE + 1)
            assert await cp.engine.cleanup_offline() == [("default", "backend-1")]
            await back.bye()
        finally:
            await cp.stop()
            await store.close()

    asyncio.run(scenario())


async def _offline(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    status = await _status(cp, name)
    return status if status is not None and status["state"] == "offline" else None


async def _recorded_offline(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    status = await _status(cp, name)
    return status if status is not None and status["disconnectedAt"] is not None else None


async def _missing(cp: ControlPlane, name: str) -> bool:
    return await cp.store.get("mesh.dataplanes", f"default/{name}") is None


def test_cleanup_ages_read_as_durations() -> None:
    assert parse_age("72h") == 72 * 3600
    assert parse_age("90s") == parse_age("90") == 90
    assert parse_age("1.5m") == 90
    assert parse_age("3d") == 3 * 86400
    assert parse_age("0") is None
    assert parse_age("off") is None
    for bad in ("", "h", "-5m", "5x", "nan"):
        with pytest.raises(ValueError, match="not a positive duration"):
            parse_age(bad)
