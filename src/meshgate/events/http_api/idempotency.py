"""Idempotency-Key for produce: a repeated key within the window gets the first answer, and
nothing is written again — also after a gateway restart.

Storage (choice): one append-only JSON-lines file per scope (plugin instance), fsynced before
the first answer is sent. Embedded backend: inside the log directory (``~http/``, a name no
topic can take). Kafka backend: in the node's runtime directory
(``$MESHGATE_RUNTIME_DIR/events/~http/``) — dedup is per node, so clients retrying through a
different gateway node can produce twice; ``idempotency_scope: cluster`` uses
``idempotency_shared`` (answers in a compacted topic) instead.
Entries older than the window are dropped on load (the file is rewritten) and ignored on read;
at most ``max_entries`` keys are kept (oldest evicted first).

Concurrency: a second request with a key whose first request is still running waits for it
and replays its answer. A failed first request stores nothing, so a retry produces. A key
reused with a different request (method, path, body digest) → 422. The window between the
log's acknowledgement and the fsync of the entry is at-least-once: a crash there lets a retry
produce again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshgate.events.http_api.b64 import b64decode, b64encode
from meshgate.events.http_api.problems import HttpProblem


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(slots=True)
class _Entry:
    created: float
    fingerprint: str
    answer: StoredAnswer


class IdempotencyStore:
    """See the module docstring. ``clock`` is wall-clock seconds (tests pass their own)."""

    def __init__(
        self,
        path: Path,
        window: float,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.window = window
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._running: dict[str, asyncio.Future[None]] = {}
        self._loaded = False
        self._load_lock: asyncio.Lock | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="idempotency-writer")

    async def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        if self._load_lock is None:
            self._load_lock = asyncio.Lock()
        async with self._load_lock:
            if not self._loaded:
                loop = asyncio.get_running_loop()
                entries = await loop.run_in_executor(self._writer, self._load_and_compact)
                self._entries.update(entries)
                self._loaded = True

    def _load_and_compact(self) -> OrderedDict[str, _Entry]:
        entries: OrderedDict[str, _Entry] = OrderedDict()
        oldest = self._clock() - self.window
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                key, entry = _decode(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash
            if entry.created >= oldest:
                entries[key] = entry
                entries.move_to_end(key)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "wb") as out:
            for key, entry in entries.items():
                out.write(_encode(key, entry))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        return entries

    def _append(self, key: str, entry: _Entry) -> None:
        with open(self.path, "ab") as out:
            out.write(_encode(key, entry))
            out.flush()
            os.fsync(out.fileno())

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.created < self._clock() - self.window:
            del self._entries[key]
            return None
        return entry

    async def run(
        self, key: str, request_fingerprint: str, work: Callable[[], Awaitable[StoredAnswer]]
    ) -> tuple[StoredAnswer, bool]:
        """``(answer, replayed)``: the stored answer for ``key`` or ``work()``'s, stored if 2xx."""
        await self._ensure_loaded()
        while True:
            entry = self._live(key)
            if entry is not None:
                if entry.fingerprint != request_fingerprint:
                    raise HttpProblem(
                        422, "Idempotency-Key was already used for a different request",
                        "idempotency-key-reused",
                    )  # fmt: skip
                return entry.answer, True
            running = self._running.get(key)
            if running is None:
                break
            await asyncio.shield(running)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._running[key] = done
        try:
            answer = await work()
            if 200 <= answer.status < 300:
                fresh = _Entry(self._clock(), request_fingerprint, answer)
                await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._append, key, fresh
                )
                self._entries[key] = fresh
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            return answer, False
        finally:
            del self._running[key]
            done.set_result(None)

    def close(self) -> None:
        self._writer.shutdown(wait=True)


def _encode(key: str, entry: _Entry) -> bytes:
    doc: dict[str, Any] = {
        "key": key,
        "t": entry.created,
        "fp": entry.fingerprint,
        "status": entry.answer.status,
        "headers": [list(h) for h in entry.answer.headers],
        "body": b64encode(entry.answer.body),
    }
    return json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def _decode(doc: dict[str, Any]) -> tuple[str, _Entry]:
    answer = StoredAnswer(
        int(doc["status"]),
        tuple((str(n), str(v)) for n, v in doc["headers"]),
        b64decode(doc["body"]),
    )
    return str(doc["key"]), _Entry(float(doc["t"]), str(doc["fp"]), answer)
