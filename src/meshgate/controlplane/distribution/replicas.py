"""This replica's view of the others, and every store write that decides who holds a dataplane.

``Replicas`` keeps in memory every ``mesh_cp_instance`` (heartbeats), ``mesh_dp_session``
(who holds which dataplane) and ``mesh_dp_offline`` record of the store, loaded at start and
then kept current from the change feed (``apply``), and answers ``verdict`` (see
``liveness.judge``) without a store read, so ``_overview`` on any replica shows dataplanes
held by another live replica as online, with that replica's id.

Writes, each one store transaction:

* ``claim`` (inside the admission's transaction): this replica's session record replaces any
  other, and the offline record goes;
* ``release``: on disconnect, only if this replica still holds the session (a conditional
  delete on ``cp``); otherwise the sidecar has already moved on and nothing is recorded
  (the status records of ``status_records`` go with a ``bye``, and with the cleanup);
* ``beat``: the heartbeat; then ``reconcile`` re-writes this replica's sessions that others
  took for dead (a paused process that came back) and closes sessions another live replica
  took over; ``reap`` turns sessions of dead replicas into offline records since the dead
  replica's last heartbeat and drops the records of dead replicas that hold nothing;
* ``delete_expired``: the cleanup of one dataplane offline past the cleanup age.

**Cleanup: every replica runs it; it is made race-free by transactions, not by electing a
leader.**  A leader (a lease in the store) would need its own expiry and hand-over rules and
would still have to guard against a paused ex-leader; the conditional deletes below are
enough alone.  Each decision is taken on a row it deletes conditionally first, so two
replicas, or a replica and an admission, serialize on that row: ``delete_expired`` deletes
the offline record only if its ``token`` is the one it judged expired, then looks for a live
session (kept: the record was stale) before deleting the Dataplane; ``reap`` deletes a
session only while its ``cp`` is still the dead replica.  An admission writes the session,
then drops the offline record, then writes the Dataplane, so it either wins (the cleanup's
conditional delete finds nothing) or waits for the cleanup's commit and writes the
Dataplane again.  PostgreSQL (read committed) re-checks a blocked DELETE's condition on the
row's newest version, which is what makes this hold; SQLite runs one writer at a time.  The
cost is that every replica scans its in-memory view once per interval: no store reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

from meshgate.controlplane.distribution.liveness import (
    INSTANCE_TYPE,
    SESSION_TYPE,
    Instance,
    SessionRecord,
    Verdict,
    departed,
    judge,
    orphaned,
)
from meshgate.controlplane.distribution.offline import (
    OFFLINE_TYPE,
    offline_doc,
    record_of,
    token_of,
)
from meshgate.controlplane.distribution.status_records import STATUS_TYPE
from meshgate.controlplane.distribution.storage import entity_id, entity_type
from meshgate.store.api import Doc, Store, Transaction

Key = tuple[str, str]
T = TypeVar("T")
TYPES = frozenset({INSTANCE_TYPE, SESSION_TYPE, OFFLINE_TYPE})
DATAPLANES = entity_type("dataplanes")
_log = logging.getLogger("meshgate.distribution")


def _key_of(ident: str) -> Key:
    mesh, _, name = ident.partition("/")
    return mesh, name


class Replicas:
    """One replica's identity, its view of all replicas, and the writes that change it."""

    def __init__(
        self,
        store: Store,
        *,
        instance_id: str,
        clock: Callable[[], float],
        dead_after: float,
        address: str = "",
        api: str = "",
    ) -> None:
        self.store = store
        self.instance_id = instance_id
        self.clock = clock
        self.dead_after = dead_after
        self.address = address
        self.api = api
        self.started = clock()
        self.instances: dict[str, Instance] = {}
        self.sessions: dict[Key, SessionRecord] = {}
        self.offline: dict[Key, float] = {}

    # ------------------------------------------------------------------ the view

    async def load(self) -> None:
        """Read the whole view from the store (at start, and when the change log was pruned)."""
        instances: dict[str, Instance] = {}
        sessions: dict[Key, SessionRecord] = {}
        offline: dict[Key, float] = {}
        for doc in await _every(self.store, INSTANCE_TYPE):
            if (instance := _parse(Instance.of, doc)) is not None:
                instances[instance.id] = instance
        for doc in await _every(self.store, SESSION_TYPE):
            if (session := _parse(SessionRecord.of, doc)) is not None:
                sessions[session.key] = session
        for doc in await _every(self.store, OFFLINE_TYPE):
            if (record := record_of(doc)) is not None:
                offline[record[0]] = record[1]
        self.instances, self.sessions, self.offline = instances, sessions, offline

    def apply(self, kind: str, ident: str, doc: Doc | None) -> None:
        """One entity of ``TYPES`` changed (``doc`` None: deleted)."""
        if kind == INSTANCE_TYPE:
            instance = None if doc is None else _parse(Instance.of, doc)
            if instance is None:
                self.instances.pop(ident, None)
            else:
                self.instances[ident] = instance
        elif kind == SESSION_TYPE:
            session = None if doc is None else _parse(SessionRecord.of, doc)
            if session is None:
                self.sessions.pop(_key_of(ident), None)
            else:
                self.sessions[session.key] = session
        elif kind == OFFLINE_TYPE:
            record = None if doc is None else record_of(doc)
            if record is None:
                self.offline.pop(_key_of(ident), None)
            else:
                self.offline[record[0]] = record[1]

    def verdict(self, key: Key, now: float) -> Verdict:
        """Whether a dataplane this replica does not hold is online elsewhere, or offline."""
        return judge(
            self.sessions.get(key), self.instances, self.offline.get(key),
            now=now, dead_after=self.dead_after, self_id=self.instance_id,
        )  # fmt: skip

    def live_instances(self, now: float) -> list[Instance]:
        return [i for i in self.instances.values() if i.live(now, self.dead_after)]

    # ------------------------------------------------------------------ sessions

    async def claim(self, tx: Transaction, key: Key, now: float) -> SessionRecord:
        """Write this replica's session of ``key`` (first: it is the row that serializes
        admissions with cleanups) and drop its offline record; ``claimed`` after commit."""
        record = SessionRecord(key, self.instance_id, now)
        ident = entity_id(*key)
        await tx.upsert(SESSION_TYPE, ident, record.document(), unique_keys=())
        await tx.delete(OFFLINE_TYPE, ident)
        return record

    def claimed(self, record: SessionRecord) -> None:
        self.sessions[record.key] = record
        self.offline.pop(record.key, None)

    async def release(
        self, key: Key, now: float, *, graceful: bool, status: Doc | None = None
    ) -> bool:
        """The sidecar left this replica: a graceful ``bye`` deletes its Dataplane (and its
        status record), otherwise it is offline from ``now`` and ``status`` (its last unwritten
        status record, if any) is written.  False (nothing written) when another replica
        holds it."""
        ident = entity_id(*key)
        async with self.store.transaction() as tx:
            mine = await tx.delete_many(SESSION_TYPE, ids=[ident], filter={"cp": self.instance_id})
            if not mine and await tx.get(SESSION_TYPE, ident) is not None:
                return False
            if graceful:
                await tx.delete(OFFLINE_TYPE, ident)
                await tx.delete(STATUS_TYPE, ident)
                await tx.delete(DATAPLANES, ident)
            else:
                await tx.upsert(OFFLINE_TYPE, ident, offline_doc(key, now), unique_keys=())
                if mine and status is not None:
                    await tx.upsert(STATUS_TYPE, ident, status, unique_keys=())
        self.sessions.pop(key, None)
        if graceful:
            self.offline.pop(key, None)
        else:
            self.offline[key] = now
        return True

    async def record_unclaimed(self, key: Key, since: float) -> bool:
        """Record ``key`` offline since ``since`` unless some replica holds a session of it
        or it has an offline record already; True when recorded."""
        ident = entity_id(*key)
        async with self.store.transaction() as tx:
            if await tx.get(SESSION_TYPE, ident) is not None:
                return False
            if await tx.get(OFFLINE_TYPE, ident) is not None:
                return False
            await tx.upsert(OFFLINE_TYPE, ident, offline_doc(key, since), unique_keys=())
        self.offline[key] = since
        return True

    # ------------------------------------------------------------------ heartbeat

    async def beat(self) -> None:
        """Write this replica's heartbeat."""
        now = self.clock()
        instance = Instance(self.instance_id, self.address, self.api, self.started, now)
        await self.store.upsert(
            INSTANCE_TYPE, self.instance_id, instance.document(), unique_keys=()
        )
        self.instances[self.instance_id] = instance

    async def reconcile(self, local: Collection[Key]) -> list[Key]:
        """Re-write the sessions of ``local`` (held here) that the store lost (reaped while
        this replica seemed dead); returns those another live replica holds now."""
        now = self.clock()
        taken: list[Key] = []
        for key in local:
            record = self.sessions.get(key)
            if record is not None and record.cp == self.instance_id:
                continue
            if record is not None:
                owner = self.instances.get(record.cp)
                if owner is not None and owner.live(now, self.dead_after):
                    taken.append(key)
                    continue
            ident = entity_id(*key)
            async with self.store.transaction() as tx:
                stored = await tx.get(SESSION_TYPE, ident)
                if stored is not None and stored.get("cp") != (record.cp if record else None):
                    continue  # changed meanwhile: judged again at the next beat
                fresh = await self.claim(tx, key, now)
            self.claimed(fresh)
            _log.warning("dataplane %s/%s: session record restored (this CP seemed dead)", *key)
        return taken

    async def reap(self) -> list[Key]:
        """Sessions of dead replicas become offline records; returns their dataplanes."""
        now = self.clock()
        reaped: list[Key] = []
        for orphan in orphaned(
            list(self.sessions.values()), self.instances,
            now=now, dead_after=self.dead_after, self_id=self.instance_id,
        ):  # fmt: skip
            key, ident = orphan.record.key, entity_id(*orphan.record.key)
            async with self.store.transaction() as tx:
                gone = await tx.delete_many(
                    SESSION_TYPE, ids=[ident], filter={"cp": orphan.record.cp}
                )
                if gone:
                    doc = offline_doc(key, orphan.since)
                    await tx.upsert(OFFLINE_TYPE, ident, doc, unique_keys=())
            if gone:
                self.sessions.pop(key, None)
                self.offline[key] = orphan.since
                reaped.append(key)
        for ident in departed(
            self.instances, self.sessions.values(),
            now=now, dead_after=self.dead_after, self_id=self.instance_id,
        ):  # fmt: skip
            await self.store.delete(INSTANCE_TYPE, ident)  # it re-creates it if it comes back
            self.instances.pop(ident, None)
        if reaped:
            _log.info("%d dataplane(s) of dead control planes recorded offline", len(reaped))
        return reaped

    # ------------------------------------------------------------------ cleanup

    def offline_candidates(self, now: float, cleanup_age: float) -> list[Key]:
        """Dataplanes with an offline record older than ``cleanup_age`` (checked again,
        under the transaction, by ``delete_expired``)."""
        return [key for key, since in self.offline.items() if now - since > cleanup_age]

    async def delete_expired(self, key: Key, now: float, cleanup_age: float) -> bool:
        """Delete the Dataplane ``key`` if it is still offline past ``cleanup_age`` and no
        live replica holds it; True when this call deleted it."""
        ident = entity_id(*key)
        async with self.store.transaction() as tx:
            doc = await tx.get(OFFLINE_TYPE, ident)
            record = None if doc is None else record_of(doc)
            if doc is None or record is None or now - record[1] <= cleanup_age:
                return False
            token = token_of(doc)
            if not await tx.delete_many(OFFLINE_TYPE, ids=[ident], filter={"token": token}):
                return False  # written again meanwhile, or another replica cleaned it
            stored = await tx.get(SESSION_TYPE, ident)
            if stored is not None:
                session = _parse(SessionRecord.of, stored)
                if session is not None and self._holds(session, now):
                    self.offline.pop(key, None)
                    return False  # online: the record was stale, and is gone now
                await tx.delete(SESSION_TYPE, ident)
            await tx.delete(STATUS_TYPE, ident)
            existed = await tx.delete(DATAPLANES, ident)
        self.offline.pop(key, None)
        self.sessions.pop(key, None)
        return existed

    def _holds(self, session: SessionRecord, now: float) -> bool:
        if session.cp == self.instance_id:
            return True
        owner = self.instances.get(session.cp)
        return owner is not None and owner.live(now, self.dead_after)


def _parse(build: Callable[[Mapping[str, Any]], T], doc: Mapping[str, Any]) -> T | None:
    try:
        return build(doc)
    except (KeyError, TypeError, ValueError):
        return None


async def _every(store: Store, kind: str) -> list[Doc]:
    found: list[Doc] = []
    offset: str | None = None
    while True:
        page = await store.list(kind, size=1000, offset=offset)
        found += page.data
        if page.next_offset is None:
            return found
        offset = page.next_offset
