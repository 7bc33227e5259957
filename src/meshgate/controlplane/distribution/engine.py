"""The distribution engine: admitted sidecars, their certificates, and the snapshots they get.

``DistributionEngine`` keeps the mesh state in memory (loaded whole at start, then changed
resource by resource from the store's change feed, and directly by admissions) and one
``Session`` per connected sidecar.  Every change is noted in a ``Delta``; a push pass
recompiles only the sessions a delta can reach (every sidecar of a mesh whose ``Mesh`` or
policies changed; for a dataplane change, that dataplane and the sidecars whose snapshot
holds endpoints of one of its services) and pushes a snapshot only when its version
(content hash) differs from the last one pushed.  Policy and mesh changes are pushed at
once; dataplane changes (admissions) wait ``push_delay`` seconds so that a burst of them
costs one pass.  Workload certificates are signed from the sidecar's CSR and renewed at 2/3
of their lifetime (or when the dataplane's identities or its mesh's CA change): the renewal
is just another snapshot version.  ACK/NACK results, certificate expiry and connection state
are kept per dataplane (``DataplaneStatus``) for ``inspect``, and stored when they change so
that other replicas show them too (``status_records``); dataplanes gone without a ``bye`` are
deleted once offline longer than ``offline_cleanup_age`` (see ``offline``).

Several engines (control-plane replicas) may share one store: each has an instance id and a
heartbeat, records the sessions it holds, and judges the others' dataplanes by their
replica's liveness (``replicas``, ``liveness``); the periodic chores are in ``upkeep``.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import uuid
from collections.abc import Callable
from typing import Any

from meshgate.agent.dataplane.protocol import message
from meshgate.compiler.mesh_index import MeshIndex
from meshgate.controlplane.ca.manager import MeshCA, utc_now
from meshgate.controlplane.distribution import compiling, offline, upkeep
from meshgate.controlplane.distribution.liveness import (
    DEFAULT_HEARTBEAT_INTERVAL,
    default_dead_after,
)
from meshgate.controlplane.distribution.replicas import TYPES as REPLICA_TYPES
from meshgate.controlplane.distribution.replicas import Replicas
from meshgate.controlplane.distribution.sessions import (
    AdmissionRefused,
    DataplaneStatus,
    Key,
    Session,
    check_hello,
)
from meshgate.controlplane.distribution.state import (
    Delta,
    MeshState,
    diff_states,
    load_state,
)
from meshgate.controlplane.distribution.status_records import (
    DEFAULT_FLUSH_DELAY,
    STATUS_TYPE,
    StatusLog,
    status_record,
    taken_over,
)
from meshgate.controlplane.distribution.storage import (
    PREFIX,
    entity_id,
    put_resource,
)
from meshgate.controlplane.distribution.tokens import DataplaneTokens
from meshgate.errors import ConfigError
from meshgate.store.api import Store
from meshgate.store.errors import RevisionGone
from meshgate.tasks import spawn

__all__ = ["AdmissionRefused", "DataplaneStatus", "DistributionEngine", "Session"]

_log = logging.getLogger("meshgate.distribution")
MAX_INCREMENTAL_CHANGES = 2000  # more changes at once: reload the whole state instead
DESTINATION_PREFIX = "mesh:"  # ids of the Services a snapshot takes from other dataplanes


class DistributionEngine:
    """Admits sidecars and keeps each one's snapshot current."""

    def __init__(
        self,
        store: Store,
        *,
        ca: MeshCA,
        tokens: DataplaneTokens,
        clock: Callable[[], datetime.datetime] = utc_now,
        rotation_check_interval: float = 1.0,
        push_delay: float = 0.03,
        offline_cleanup_age: float | None = offline.DEFAULT_CLEANUP_AGE,
        offline_check_interval: float = offline.DEFAULT_CLEANUP_INTERVAL,
        reconnect_grace: float = offline.DEFAULT_RECONNECT_GRACE,
        instance_id: str | None = None,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        dead_after: float | None = None,
        status_flush_delay: float = DEFAULT_FLUSH_DELAY,
    ) -> None:
        self.store = store
        self.ca = ca
        self.tokens = tokens
        self.clock = clock
        self.rotation_check_interval = rotation_check_interval
        self.push_delay = push_delay
        self.offline_cleanup_age = offline_cleanup_age
        self.offline_check_interval = offline_check_interval
        self.reconnect_grace = reconnect_grace
        self.heartbeat_interval = heartbeat_interval
        self.replicas = Replicas(
            store,
            instance_id=instance_id or new_instance_id(),
            clock=self.now,
            dead_after=dead_after or default_dead_after(heartbeat_interval),
        )
        self.state = MeshState(revision=-1)
        self.sessions: dict[Key, Session] = {}
        self.statuses: dict[Key, DataplaneStatus] = {}
        self.status_log = StatusLog(
            store, self.replicas.instance_id, self._status_record, status_flush_delay,
            alone=lambda: len(self.replicas.live_instances(self.now())) <= 1,
        )  # fmt: skip
        self.indexes: dict[str, MeshIndex] = {}
        self._pending = Delta()
        self._next_pass: asyncio.Future[None] | None = None
        self._pass_task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.replicas.beat()  # before any session: others see whose sessions they are
        await self.replicas.load()
        started = self.now()
        await self.reload()
        self._tasks = [
            spawn(self._follow(), name="distribution-follow"),
            spawn(self.status_log.run(), name="distribution-status-writes"),
            spawn(
                upkeep.rotation_loop(self, self.rotation_check_interval),
                name="distribution-rotation",
            ),
            spawn(
                upkeep.heartbeat_loop(self, self.heartbeat_interval), name="distribution-heartbeat"
            ),
            spawn(
                upkeep.unclaimed_after_grace(self, self.reconnect_grace, started),
                name="distribution-unclaimed",
            ),
        ]
        if self.offline_cleanup_age is not None:
            self._tasks.append(
                spawn(
                    upkeep.offline_loop(self, self.offline_check_interval),
                    name="distribution-offline-cleanup",
                )
            )

    async def stop(self) -> None:
        try:
            await self.status_log.flush()
        except Exception as exc:  # a store closing with the control plane
            _log.warning("cannot write the last dataplane statuses: %s", exc)
        tasks, self._tasks = self._tasks, []
        if self._pass_task is not None:
            tasks.append(self._pass_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # a failed task was logged already
                pass
        for session in list(self.sessions.values()):
            session.close()

    async def _follow(self) -> None:
        async for revision in self.store.subscribe():
            if revision <= self.state.revision:
                continue
            try:
                async with self.lock:
                    await self._catch_up()
                    if self._pending.meshes:  # policy or mesh changes: push at once
                        await self._push_pending()
                if self._pending:
                    self.schedule_pass()
            except Exception:
                _log.exception("following the store at revision %d failed", revision)

    # ------------------------------------------------------------------ state and pushes

    async def mark_unclaimed(self, since: float) -> list[Key]:
        """See ``upkeep.mark_unclaimed``."""
        return await upkeep.mark_unclaimed(self, since)

    async def reload(self) -> set[str]:
        """Catch up with the store and push every pending change now; returns the meshes
        that had changes.  When it returns, every change made so far is handled."""
        async with self.lock:
            await self._catch_up()
            touched = set(self._pending.touched)
            await self._push_pending()
            return touched

    async def _catch_up(self) -> None:
        """Apply the store's changes since ``state.revision`` to the state (lock held)."""
        changes = None
        if self.state.revision >= 0:
            try:
                changes = await self.store.changes_since(self.state.revision)
            except RevisionGone:
                changes = None
        # what the state and the replicas' view are made of (not statuses, CA roots…)
        latest = dict.fromkeys(
            (c.type, c.id)
            for c in changes or ()
            if c.type.startswith(PREFIX) or c.type in REPLICA_TYPES
        )
        if changes is None or len(latest) > MAX_INCREMENTAL_CHANGES:
            fresh = await load_state(self.store)
            await self.replicas.load()
            if fresh.revision > self.state.revision:
                delta = diff_states(self.state, fresh)
                self.state = fresh
                self.note(delta)
            return
        delta = Delta()
        try:
            for kind, ident in latest:
                # the newest document: later changes are applied again, to the same effect
                doc = await self.store.get(kind, ident)
                if kind in REPLICA_TYPES:
                    self.replicas.apply(kind, ident, doc)
                else:
                    self.state.apply_document(kind, ident, doc, delta)
        finally:
            self.note(delta)  # what was applied is pushed even if a read failed
        if changes:
            self.state.revision = max(self.state.revision, max(c.revision for c in changes))

    def note(self, delta: Delta) -> None:
        for mesh in delta.touched:
            self.indexes.pop(mesh, None)
        self._pending.merge(delta)

    def schedule_pass(self) -> asyncio.Future[None]:
        """A push pass ``push_delay`` from now (one for every change noted meanwhile)."""
        if self._next_pass is None:
            self._next_pass = asyncio.get_running_loop().create_future()
            self._pass_task = spawn(
                self._delayed_pass(self._next_pass), name="distribution-push-pass"
            )
        return self._next_pass

    async def _delayed_pass(self, done: asyncio.Future[None]) -> None:
        try:
            await asyncio.sleep(self.push_delay)
            async with self.lock:
                if self._next_pass is done:
                    self._next_pass = None
                await self._push_pending()
        finally:
            if self._next_pass is done:
                self._next_pass = None
            if not done.done():
                done.set_result(None)

    async def _push_pending(self) -> None:
        """Recompile the sessions the pending changes can reach (lock held)."""
        pending, self._pending = self._pending, Delta()
        if not pending:
            return
        await upkeep.ensure_roots(self, pending.meshes)
        for key, session in list(self.sessions.items()):
            if pending.affects(key, session.depends_on):
                await self._push(session)

    async def check_rotation(self) -> int:
        """Renew certificates past 2/3 of their life (by pushing); returns how many were due."""
        now = self.clock()
        due = [s for s in self.sessions.values() if s.cert and s.cert.needs_rotation(now)]
        async with self.lock:
            for session in due:
                await self._push(session)
        return len(due)

    async def _push(self, session: Session) -> None:
        """Compile ``session``'s snapshot and send it if its version is new (lock held)."""
        if session.closed:
            return
        mesh_name, name = session.key
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        session.depends_on = None
        mesh = self.state.meshes.get(mesh_name)
        dataplane = self.state.dataplane(mesh_name, name)
        if mesh is None or dataplane is None:
            self._compile_error(session.key, status, "the mesh or the dataplane no longer exists")
            return
        cert = session.cert
        try:
            snap = await compiling.compile_for(self, mesh, dataplane, session)
        except (ConfigError, ValueError) as exc:
            self._compile_error(session.key, status, str(exc))
            _log.error("cannot compile dataplane %s/%s: %s", mesh_name, name, exc)
            return
        except Exception:
            self._compile_error(session.key, status, "internal error (see the control plane's log)")
            _log.exception("compiling dataplane %s/%s failed", mesh_name, name)
            return
        finally:
            if session.cert is not cert:
                self.status_log.changed(session.key)
        self._compile_error(session.key, status, None)
        session.depends_on = frozenset(
            s.name for s in snap.services if s.name and s.id.startswith(DESTINATION_PREFIX)
        )
        if session.pushed is not None and session.pushed.version == snap.version:
            return
        session.pushed = snap
        status.pushed_version = snap.version
        status.pushes += 1
        not_after = session.cert.not_after.isoformat() if session.cert else None
        session.send(
            message("snapshot", version=snap.version, snapshot=snap.model_dump(mode="json"),
                    cert_not_after=not_after)
        )  # fmt: skip
        _log.info("pushed snapshot %s to %s/%s", snap.version, mesh_name, name)

    # ------------------------------------------------------------------ sessions

    async def admit(
        self, hello: dict[str, Any], send: Callable[[bytes], None], close: Callable[[], None]
    ) -> Session:
        """Check a ``hello``, register the dataplane; returns once its first snapshot was sent
        (or could not be compiled)."""
        resource, csr = await check_hello(self.tokens, hello)
        if resource.mesh not in self.state.meshes:
            await self.reload()  # a mesh created a moment ago
        key = (resource.mesh, resource.name)
        async with self.lock:
            if resource.mesh not in self.state.meshes:
                raise AdmissionRefused(f"mesh '{resource.mesh}' does not exist")
            # the write and the state change under the lock: the change feed, which also
            # takes it, then finds this revision already reflected
            async with self.store.transaction() as tx:
                claim = await self.replicas.claim(tx, key, self.now())  # first: see replicas
                await put_resource(tx, resource)
                stored = await tx.get(STATUS_TYPE, entity_id(*key))
            self.replicas.claimed(claim)
            if (taken := taken_over(stored, self.replicas.instance_id)) is not None:
                self.statuses[key] = taken  # the last holder's status is newer than ours
            delta = Delta()
            self.state.put_dataplane(resource, delta)
            delta.dataplane(key, ())  # its own first snapshot
            self.note(delta)
            previous = self.sessions.pop(key, None)
            if previous is not None:
                previous.closed = True
                previous.close()
            session = Session(key, csr, send, close, running_version=hello.get("running"))
            self.sessions[key] = session
            send(message("welcome", mesh=resource.mesh, name=resource.name))
            status = self.statuses.setdefault(key, DataplaneStatus())
            status.connected, status.connected_at = True, self.now()
            first_pass = self.schedule_pass()
        try:
            await asyncio.shield(first_pass)  # shared with other admissions
        except asyncio.CancelledError:
            self._forget(session)
            raise
        return session

    def acked(self, session: Session, version: str) -> None:
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        if status.acked_version != version:
            status.acked_version = version
            self.status_log.changed(session.key)
        session.running_version = version

    def nacked(self, session: Session, version: str, error: str) -> None:
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        status.nack = {"version": version, "error": error, "at": self.now()}
        self.status_log.changed(session.key)
        _log.warning("%s/%s refused snapshot %s: %s", *session.key, version, error)

    def _compile_error(self, key: Key, status: DataplaneStatus, error: str | None) -> None:
        if status.compile_error != error:
            status.compile_error = error
            self.status_log.changed(key)

    def _status_record(self, key: Key) -> dict[str, Any] | None:
        """The status record of ``key`` to store now; None when not held here."""
        status = self.statuses.get(key)
        if key not in self.sessions or status is None:
            return None
        return status_record(key, status, self.replicas.instance_id)

    async def disconnected(self, session: Session, *, graceful: bool) -> None:
        """The sidecar left.  A graceful ``bye`` removes its Dataplane resource; otherwise the
        dataplane is offline from now, and deleted once offline past the cleanup age.  Nothing
        is written when another replica holds the dataplane by now (it moved there)."""
        if not self._forget(session):
            return
        mesh, name = session.key
        try:
            async with self.lock:  # an admission of the same dataplane waits, or went first
                if session.key in self.sessions:
                    return
                status, final = self.statuses.get(session.key), None
                if self.status_log.take(session.key) and status is not None:
                    final = status_record(session.key, status, self.replicas.instance_id)
                await self.replicas.release(
                    session.key, self.now(), graceful=graceful, status=final
                )
        except Exception as exc:  # a store closing with the control plane
            _log.warning("cannot record that %s/%s left: %s", mesh, name, exc)

    def _forget(self, session: Session) -> bool:
        """Drop ``session``; False when another session of its dataplane replaced it."""
        session.closed = True
        if self.sessions.get(session.key) is not session:
            return False
        del self.sessions[session.key]
        status = self.statuses.setdefault(session.key, DataplaneStatus())
        status.connected, status.disconnected_at = False, self.now()
        return True

    async def cleanup_offline(self) -> list[Key]:
        """Delete the Dataplanes offline longer than ``offline_cleanup_age``; returns them."""
        return await upkeep.cleanup_offline(self)

    def now(self) -> float:
        return self.clock().timestamp()


def new_instance_id() -> str:
    """``<host>-<8 hex>``: unique per process start, readable in ``_overview``."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
