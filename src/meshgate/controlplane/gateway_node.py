"""Keep a proxy in step with a config store: every new revision compiled and applied.

The store is the single source of truth in every mode: the Admin API writes to it, a
DB-less node loads its declarative file into an in-memory store, and several nodes on one
PostgreSQL see each other's writes through the store's change feed.  Each revision is read
whole, validated and compiled (``compile_gateway``, a pure function) into a snapshot; a
revision that does not compile is refused and the running snapshot stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from meshgate import snapshot
from meshgate.agent.supervisor import Proxy
from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.controlplane.admin_api.config_api import apply_declarative
from meshgate.controlplane.tls_default import with_default_certificate
from meshgate.errors import ConfigError
from meshgate.resources.declarative import parse_text
from meshgate.resources.from_entities import config_from_entities
from meshgate.store import Entity, Store
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.node")


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
        self._applied = asyncio.Condition()
        self._lock = asyncio.Lock()
        self._on_applied = on_applied
        self._task: asyncio.Task[None] | None = None

    async def compile_current(self) -> tuple[int, snapshot.Snapshot]:
        """The store's current revision and its compiled snapshot (``ConfigError`` if invalid).

        Validation and compilation run in a thread: with thousands of routes they take long
        enough that doing them on the event loop would stall the traffic it serves.
        """
        dump = await self.store.dump_all()
        snap = await asyncio.to_thread(self._compile, dump.entities)
        return dump.revision, snap

    def _compile(self, entities: list[Entity]) -> snapshot.Snapshot:
        config = config_from_entities(entities)
        snap = compile_gateway(config, self.node)
        snap, self._tls_default = with_default_certificate(snap, self._tls_default)
        return snap

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
