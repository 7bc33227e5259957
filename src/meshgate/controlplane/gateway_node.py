"""Keep a proxy in step with a config store: every new revision compiled and applied.

The store is the single source of truth in every mode: the Admin API writes to it, a
DB-less node loads its declarative file into an in-memory store, and several nodes on one
PostgreSQL see each other's writes through the store's change feed.  A new revision is read
as a delta — the entities its change feed names, fetched one by one — applied to the node's
``EntitySet`` (which revalidates only those) and compiled by a ``GatewayCompiler`` that
reuses every unchanged entity's compiled object; the first revision, a pruned change feed or
a large change reads the store whole instead.  A revision that does not validate or compile
is refused and the running snapshot stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshgate import snapshot
from meshgate.agent.heap import HeapFreezer
from meshgate.agent.supervisor import Proxy
from meshgate.compiler import NodeSettings
from meshgate.compiler.gateway import GatewayCompiler
from meshgate.controlplane.admin_api.config_api import apply_declarative
from meshgate.controlplane.tls_default import DEFAULT_CERT_ID
from meshgate.errors import ConfigError
from meshgate.proxy.tls.certs import generate_self_signed
from meshgate.resources.declarative import parse_text
from meshgate.resources.entity_set import Delta, EntitySet
from meshgate.resources.gateway_config import GatewayConfig
from meshgate.store import Entity, RevisionGone, Store
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.node")

MAX_DELTA = 200
"""A change naming more entities than this is read with one dump of the store instead."""
# Deltas this small compile on the event loop: O(change) work, a few milliseconds even with
# 10,000 routes, where a thread would have to win the GIL from a busy loop to finish.
_INLINE_DELTA = 50
_DELTA_ROUNDS = 5  # consistent-read attempts while writes keep landing, then a full read


async def import_file(store: Store, path: Path) -> int:
    """Replace the store's gateway config with the file's; returns the new revision."""
    try:
        text = await asyncio.to_thread(path.read_text)
    except OSError as exc:
        raise ConfigError.single(f"cannot read {path}: {exc.strerror or exc}") from exc
    document = parse_text(text, "json" if path.suffix == ".json" else "yaml")
    return await apply_declarative(store, document)


class GatewayNode:
    """Compiles the store's config for this node and applies it to ``proxy``."""

    def __init__(
        self,
        store: Store,
        node: NodeSettings,
        proxy: Proxy,
        *,
        on_applied: Callable[[snapshot.Snapshot], None] | None = None,
    ) -> None:
        self.store = store
        self.node = node
        self.proxy = proxy
        self.snapshot: snapshot.Snapshot | None = None
        self.applied_revision = -1
        self.last_error: str | None = None
        self._tls_default: tuple[str, str] | None = None
        self._entities = EntitySet()
        self._entities_revision = -1  # the store revision ``_entities`` reflects
        self._compiler = GatewayCompiler()
        self._heap = HeapFreezer()
        self._applied = asyncio.Condition()
        self._lock = asyncio.Lock()
        self._on_applied = on_applied
        self._task: asyncio.Task[None] | None = None

    async def compile_current(self) -> tuple[int, snapshot.Snapshot]:
        """The store's current revision and its compiled snapshot (``ConfigError`` if invalid).

        A full reload (or a large delta) is validated and compiled in a thread, so the event
        loop keeps serving traffic meanwhile; a small delta costs what it changes and runs
        inline.
        """
        revision, delta = await self._read_delta()
        if delta is None:
            dump = await self.store.dump_all()
            revision = dump.revision
            snap = await asyncio.to_thread(self._compile_full, dump.entities)
        elif len(delta) <= _INLINE_DELTA:
            snap = self._compile_delta(delta)
        else:
            snap = await asyncio.to_thread(self._compile_delta, delta)
        self._entities_revision = revision
        return revision, snap

    async def _read_delta(self) -> tuple[int, Delta | None]:
        """The entities changed since ``_entities`` was built, read consistently: the store
        revision is the same before and after the reads.  None: read everything instead."""
        base = self._entities_revision
        if base < 0:
            return base, None
        delta: dict[tuple[str, str], dict[str, Any] | None] = {}
        for _ in range(_DELTA_ROUNDS):
            try:
                changes = await self.store.changes_since(base)
            except RevisionGone:
                return base, None
            keys = dict.fromkeys((change.type, change.id) for change in changes)
            if len(delta) + len(keys) > MAX_DELTA:
                return base, None
            for entity_type, entity_id in keys:
                delta[(entity_type, entity_id)] = await self.store.get(entity_type, entity_id)
            last = max((change.revision for change in changes), default=base)
            if await self.store.revision() == last:
                return last, delta
            base = last
        return base, None

    def _compile_full(self, entities: list[Entity]) -> snapshot.Snapshot:
        return self._compile(self._entities.replace(entities))

    def _compile_delta(self, delta: Delta) -> snapshot.Snapshot:
        return self._compile(self._entities.apply(delta))

    def _compile(self, config: GatewayConfig) -> snapshot.Snapshot:
        fallback = None
        if not config.certificates and any(ln.protocol == "https" for ln in self.node.listeners):
            # Kong's default certificate, made once per node so reloads keep it (and the version)
            self._tls_default = self._tls_default or generate_self_signed(
                ["localhost", "127.0.0.1"]
            )
            cert, key = self._tls_default
            fallback = snapshot.Certificate(id=DEFAULT_CERT_ID, cert=cert, key=key)
        return self._compiler.compile(config, self.node, fallback_certificate=fallback)

    async def start(self) -> None:
        """Compile and start the proxy on the current revision, then follow the change feed."""
        revision, snap = await self.compile_current()
        await self.proxy.start(snap)
        await self._mark_applied(revision, snap)
        self._task = spawn(self._follow(), name="gateway-node-follow")

    async def sync(self) -> bool:
        """Apply the store's current revision if it is new; False when it was refused."""
        async with self._lock:
            if await self.store.revision() <= self.applied_revision:
                return True  # another caller applied it while this one waited for the lock
            try:
                revision, snap = await self.compile_current()
            except ConfigError as exc:
                self.last_error = "; ".join(str(v) for v in exc.violations)
                _log.error("config refused, running snapshot kept: %s", self.last_error)
                return False
            if revision <= self.applied_revision:
                return True
            if self.snapshot is not None and snap.version == self.snapshot.version:
                await self._mark_applied(revision, snap)
                return True
            try:
                await self.proxy.apply(snap)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                _log.error("snapshot %s refused, running one kept: %s", snap.version, exc)
                return False
            await self._mark_applied(revision, snap)
            _log.info("revision %d applied as snapshot %s", revision, snap.version)
            return True

    async def _mark_applied(self, revision: int, snap: snapshot.Snapshot) -> None:
        async with self._applied:
            self.applied_revision = revision
            self.snapshot = snap
            self.last_error = None
            self._applied.notify_all()
        self._heap.after_apply(len(self._entities))
        if self._on_applied is not None:
            self._on_applied(snap)

    async def wait_applied(self, revision: int, timeout: float = 5.0) -> bool:
        """Wait until ``revision`` (or a later one) runs; False on timeout or refusal."""
        if self.applied_revision < revision:
            await self.sync()

        async def reached() -> None:
            async with self._applied:
                await self._applied.wait_for(lambda: self.applied_revision >= revision)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    async def on_admin_change(self, revision: int) -> None:
        """Admin API hook: answer a write once the proxies run it (bounded wait)."""
        await self.wait_applied(revision)

    async def _follow(self) -> None:
        async for revision in self.store.subscribe():
            if revision > self.applied_revision:
                await self.sync()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.proxy.stop()
