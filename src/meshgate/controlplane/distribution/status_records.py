"""Dataplane status in the store, so that every replica's Mesh API shows it.

The replica holding a dataplane's session keeps its ``DataplaneStatus`` in memory and writes
it as a ``mesh_dp_status`` record (id ``<mesh>/<name>``) when it changes in a way the others
must see: an ACK of a new version, a NACK, a new workload certificate, a compile error
appearing or going.  ``StatusLog`` batches those writes: they wait until no change came for
``delay`` seconds (at most ``MAX_WAIT``: a burst of ACKs after a policy change is written
after the burst, not in its way; longer while no other replica is live), then go in one
transaction per ``CHUNK`` dataplanes, several changes of one dataplane as one write; nothing
is written for heartbeats or pushes alone.

A record is written only while this replica holds the session.  Each transaction writes its
records first, then reads their session records and rolls back if one is no longer this
replica's (the others are then written again without it).  Writing before checking makes
this strict on PostgreSQL (read committed) too: a check that passed precedes any claim by
another replica, and that replica's own status writes touch the same rows, so they wait for
this transaction and land after it; SQLite runs one writer at a time.

The record outlives the session (other replicas show an offline dataplane's last ACK and
certificate) and goes with the Dataplane (``Replicas.release`` on ``bye``, the offline
cleanup, the Mesh API's DELETE of the Dataplane or its mesh).  A status of a dataplane whose
Dataplane is gone while its session lasts deletes the record instead of writing it.  Its type has no ``mesh.`` prefix: the change feed does not make replicas read it;
they read it when the Mesh API asks about dataplanes they do not hold (``read_statuses``).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable
from typing import Any

from meshgate.controlplane.distribution.liveness import SESSION_TYPE
from meshgate.controlplane.distribution.sessions import DataplaneStatus
from meshgate.controlplane.distribution.storage import STATUS_TYPE, entity_id, entity_type
from meshgate.store.api import Doc, Store

__all__ = ["STATUS_TYPE", "StatusLog", "read_statuses", "status_of", "status_record", "taken_over"]
_DATAPLANES = entity_type("dataplanes")
DEFAULT_FLUSH_DELAY = 0.1
"""Seconds without a status change before the changes are written."""
MAX_WAIT = 1.0
"""Seconds a change waits for its write at most, however many follow it."""
ALONE_QUIET, ALONE_MAX_WAIT = 1.0, 5.0
"""The same while no other replica is live: nobody reads the records meanwhile (they are for
replicas yet to start, and this one's restart), so fewer, larger writes."""
CHUNK = 100
"""Dataplanes per transaction: SQLite runs a transaction's one-row writes on the event loop."""
FEW = 20
"""Up to this many statuses are read one by one; more, by listing the mesh's records."""
Key = tuple[str, str]  # (mesh, dataplane name)
_log = logging.getLogger("meshgate.distribution")


def status_record(key: Key, status: DataplaneStatus, cp: str) -> dict[str, Any]:
    """The stored form of ``status``, written by the replica ``cp``."""
    mesh, name = key
    expiry = status.cert_not_after
    return {
        "id": entity_id(mesh, name), "mesh": mesh, "name": name, "cp": cp,
        "connectedAt": status.connected_at,
        "pushedVersion": status.pushed_version, "pushes": status.pushes,
        "ackedVersion": status.acked_version, "nack": status.nack,
        "compileError": status.compile_error,
        "certificate": None if expiry is None else {
            "notAfter": expiry.isoformat(), "serial": status.cert_serial,
            "regenerations": status.cert_regenerations,
        },
    }  # fmt: skip


def status_of(doc: Doc) -> DataplaneStatus | None:
    """The status a record holds (its connection fields are the caller's); None if malformed."""
    cert, nack = doc.get("certificate"), doc.get("nack")
    cert = cert if isinstance(cert, dict) else {}
    try:
        return DataplaneStatus(
            connected_at=None if doc.get("connectedAt") is None else float(doc["connectedAt"]),
            pushed_version=_text(doc.get("pushedVersion")),
            pushes=int(doc.get("pushes") or 0),
            acked_version=_text(doc.get("ackedVersion")),
            nack=dict(nack) if isinstance(nack, dict) else None,
            compile_error=_text(doc.get("compileError")),
            cert_not_after=None
            if cert.get("notAfter") is None
            else datetime.datetime.fromisoformat(str(cert["notAfter"])),
            cert_serial=_text(cert.get("serial")),
            cert_regenerations=int(cert.get("regenerations") or 0),
        )
    except (TypeError, ValueError):
        return None


def taken_over(doc: Doc | None, instance_id: str) -> DataplaneStatus | None:
    """The status a replica (``instance_id``) admitting a dataplane continues from: the
    stored one when another replica wrote it (it held the dataplane since), else None."""
    if doc is None or doc.get("cp") == instance_id:
        return None
    return status_of(doc)


async def read_statuses(store: Store, mesh: str, names: list[str]) -> dict[str, DataplaneStatus]:
    """The stored statuses of the dataplanes ``names`` of ``mesh`` that have one, by name:
    one read each for a few, else the mesh's records page by page."""
    found: dict[str, DataplaneStatus] = {}
    if len(names) <= FEW:
        docs = [
            doc for name in names if (doc := await store.get(STATUS_TYPE, entity_id(mesh, name)))
        ]
    else:
        wanted, docs, offset = set(names), [], None
        while True:
            page = await store.list(STATUS_TYPE, size=1000, offset=offset, filter={"mesh": mesh})
            docs += [doc for doc in page.data if doc.get("name") in wanted]
            if (offset := page.next_offset) is None:
                break
    for doc in docs:
        if (status := status_of(doc)) is not None:
            found[str(doc.get("name"))] = status
    return found


class _Lost(Exception):
    def __init__(self, keys: list[Key]) -> None:
        super().__init__(f"{len(keys)} session(s) held elsewhere now")
        self.keys = keys


class StatusLog:
    """The statuses changed since the last write, and the task that writes them."""

    def __init__(
        self,
        store: Store,
        instance_id: str,
        record_of: Callable[[Key], dict[str, Any] | None],
        delay: float = DEFAULT_FLUSH_DELAY,
        alone: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.instance_id = instance_id
        self.record_of = record_of  # the record to write now (None: not held here any more)
        self.delay = delay
        self.alone = alone  # whether no other replica is live
        self.dirty: set[Key] = set()
        self.writes = 0  # records written (for tests and the bench)
        self._wake = asyncio.Event()

    def changed(self, key: Key) -> None:
        self.dirty.add(key)
        self._wake.set()

    def take(self, key: Key) -> bool:
        """Whether ``key`` had an unwritten change (now the caller's to write)."""
        if key in self.dirty:
            self.dirty.discard(key)
            return True
        return False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            start = loop.time()
            while self._wake.is_set():
                quiet, longest = (ALONE_QUIET, ALONE_MAX_WAIT) if self.alone() else (0, MAX_WAIT)
                left = start + max(longest, self.delay) - loop.time()
                if left <= 0:
                    break
                self._wake.clear()
                await asyncio.sleep(min(max(quiet, self.delay), left))
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                _log.exception("writing dataplane statuses failed")

    async def flush(self) -> int:
        """Write every pending status still held here; returns how many were written."""
        keys, self.dirty = self.dirty, set()
        records = {key: doc for key in keys if (doc := self.record_of(key)) is not None}
        written = 0
        pending = list(records.items())
        for start in range(0, len(pending), CHUNK):
            chunk = dict(pending[start : start + CHUNK])
            try:
                written += await self._write(chunk)
            except Exception:
                self.dirty |= keys  # written at the next flush
                raise
        self.writes += written
        return written

    async def _write(self, chunk: dict[Key, dict[str, Any]]) -> int:
        while chunk:
            try:
                async with self.store.transaction() as tx:
                    for doc in chunk.values():
                        if await tx.get(_DATAPLANES, doc["id"]) is None:
                            await tx.delete(STATUS_TYPE, doc["id"])  # deleted meanwhile
                        else:
                            await tx.upsert(STATUS_TYPE, doc["id"], doc, unique_keys=())
                    lost = [
                        key
                        for key in chunk
                        if not _held_by(
                            await tx.get(SESSION_TYPE, entity_id(*key)), self.instance_id
                        )
                    ]
                    if lost:
                        raise _Lost(lost)
                return len(chunk)
            except _Lost as exc:
                chunk = {key: doc for key, doc in chunk.items() if key not in exc.keys}
        return 0


def _held_by(session: Doc | None, instance_id: str) -> bool:
    return session is not None and session.get("cp") == instance_id


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
