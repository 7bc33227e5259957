"""The engine's periodic chores: heartbeat, offline marking, offline cleanup, rotation, roots.

* ``heartbeat_loop``: every ``heartbeat_interval`` the replica writes its heartbeat, restores
  session records the store lost, closes sessions another live replica took over, and turns
  the sessions of dead replicas into offline records (``Replicas.reap``);
* ``mark_unclaimed``: once the reconnect grace after this replica's start has passed, the
  Dataplanes that nobody holds and nobody recorded offline (a control plane that crashed before
  heartbeats existed, or a Dataplane written through the API with no sidecar) are offline
  from this replica's start, so the cleanup age applies to them;
* ``cleanup_offline``: Dataplanes offline past the cleanup age are deleted.  Every replica
  runs it; ``Replicas.delete_expired`` makes that race-free (see ``replicas``).

``rotation_loop`` renews workload certificates; ``ensure_roots`` creates the CA roots of mTLS
meshes as soon as they appear, on every replica at once: ``CAStorage.create_root`` inserts, so
the store keeps the first root and every replica loads and uses that one.

Functions of the engine's state, kept out of ``engine`` to keep it about sessions and pushes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from meshgate.controlplane.distribution.state import Delta

if TYPE_CHECKING:
    from meshgate.controlplane.distribution.engine import DistributionEngine

Key = tuple[str, str]
_log = logging.getLogger("meshgate.distribution")


async def heartbeat_loop(engine: DistributionEngine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await heartbeat(engine)
        except Exception:
            _log.exception("control plane heartbeat failed")


async def heartbeat(engine: DistributionEngine) -> None:
    replicas = engine.replicas
    await replicas.beat()
    async with engine.lock:  # local sessions and their records change together
        taken = await replicas.reconcile(list(engine.sessions))
        for key in taken:
            session = engine.sessions.get(key)
            if session is not None:
                _log.warning("dataplane %s/%s reconnected to another control plane", *key)
                session.close()
    await replicas.reap()


async def rotation_loop(engine: DistributionEngine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await engine.check_rotation()
        except Exception:
            _log.exception("certificate rotation check failed")


async def ensure_roots(engine: DistributionEngine, meshes: set[str]) -> None:
    """Create the CA roots of the mTLS meshes among ``meshes`` unless they exist."""
    for name in meshes:
        mesh = engine.state.meshes.get(name)
        if mesh is None or not mesh.mtls_enabled:
            continue
        try:
            await engine.ca.trusted_roots(mesh)
        except Exception:
            _log.exception("cannot prepare the CA of mesh %s", name)


async def offline_loop(engine: DistributionEngine, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await cleanup_offline(engine)
        except Exception:
            _log.exception("deleting offline dataplanes failed")


async def unclaimed_after_grace(engine: DistributionEngine, grace: float, since: float) -> None:
    await asyncio.sleep(grace)
    try:
        await mark_unclaimed(engine, since)
    except Exception:
        _log.exception("recording dataplanes that did not come back as offline failed")


async def mark_unclaimed(engine: DistributionEngine, since: float) -> list[Key]:
    """Record offline from ``since`` the Dataplanes no replica holds and none recorded."""
    marked: list[Key] = []
    now = engine.now()
    for mesh, dataplanes in list(engine.state.dataplanes.items()):
        for name in list(dataplanes):
            key = (mesh, name)
            if key in engine.sessions:
                continue
            verdict = engine.replicas.verdict(key, now)
            if verdict.online or verdict.since is not None:
                continue
            async with engine.lock:
                if key in engine.sessions or engine.state.dataplane(mesh, name) is None:
                    continue
                if not await engine.replicas.record_unclaimed(key, since):
                    continue
            marked.append(key)
    if marked:
        _log.info("%d dataplane(s) did not reconnect after a restart: offline", len(marked))
    return marked


async def cleanup_offline(engine: DistributionEngine) -> list[Key]:
    """Delete the Dataplanes offline longer than the engine's cleanup age; returns them."""
    age = engine.offline_cleanup_age
    if age is None:
        return []
    now = engine.now()
    deleted: list[Key] = []
    for key in engine.replicas.offline_candidates(now, age):
        async with engine.lock:
            if key in engine.sessions:  # back meanwhile (its admission dropped the record)
                continue
            if not await engine.replicas.delete_expired(key, now, age):
                continue
            delta = Delta()
            engine.state.remove_dataplane(*key, delta)
            engine.note(delta)
            engine.statuses.pop(key, None)
        deleted.append(key)
        _log.info("deleted dataplane %s/%s: offline longer than %.0fs", *key, age)
    if deleted:
        engine.schedule_pass()
    return deleted
