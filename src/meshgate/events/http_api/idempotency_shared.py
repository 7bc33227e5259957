"""Idempotency-Key across gateway nodes: the answers live in a topic of the event log itself.

``IdempotencyStore`` (one file per node) dedups per node; with ``idempotency_scope: cluster``
kafka-upstream uses this store instead. Every node tails one topic (one partition; on Kafka
created with ``cleanup.policy=compact,delete`` and ``retention.ms`` = the window, so it keeps
the last answer per key and drops expired ones) into memory. An answer is written there
(acks all) before the client gets it.

Semantics: a retry sent to any node after the first answer was given is replayed, never
produced again. Requests with the same key racing on several nodes at once are ordered by the
topic itself: before working, a node appends a *claim* (its own record key, so compaction never
drops an answer for it) and reads the topic up to that claim; the first live claim of a key
wins — every node reads the same order — and only its node produces. The others wait for the
winner's answer and replay it; when the winner fails (non-2xx: it writes a *release*) or its
claim outlives ``claim_ttl`` (its node died), they claim again; past ``timeout`` a waiter is
answered 409 with Retry-After (the request is still in progress elsewhere). On one node the
second request waits for the first without a claim. If writing the answer fails after the
record was stored, the answer is still given (the record is in the log) and a later retry may
produce again: at-least-once, as with the file. The tail keeps every live entry in memory
(``max_entries`` newest).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from meshgate.events.api import EventLog, ProduceRecord
from meshgate.events.errors import (
    EventLogError,
    InvalidTopic,
    OffsetOutOfRange,
    TopicAlreadyExists,
)
from meshgate.events.http_api.idempotency import StoredAnswer, _decode, _encode, _Entry
from meshgate.events.http_api.problems import HttpProblem, problem_for
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.events.http")
DEFAULT_TOPIC = "meshgate-idempotency"
_CLAIM_PREFIX = "~claim\n"


@dataclass(frozen=True, slots=True)
class _Claim:
    id: str
    created: float


class SharedIdempotencyStore:
    """Same ``run`` contract as ``IdempotencyStore``; ``scope`` prefixes every key (the plugin
    instance id: the same on every node)."""

    def __init__(
        self,
        log: EventLog,
        topic: str,
        scope: str,
        window: float,
        *,
        timeout: float = 10.0,
        max_entries: int = 100_000,
        poll_wait: float = 1.0,
        claim_ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.topic = topic
        self.scope = scope
        self.window = window
        self.timeout = timeout
        self.max_entries = max_entries
        self.poll_wait = poll_wait
        self.claim_ttl = claim_ttl
        self._holders: dict[str, _Claim] = {}  # key name -> the claim that may produce
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._running: dict[str, asyncio.Future[None]] = {}
        self._position = 0  # next offset the tail reads
        self._moved = asyncio.Event()
        self._tail: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    async def _ensure_started(self) -> None:
        if self._tail is not None:
            return
        async with self._start_lock:
            if self._tail is not None:
                return
            retention = {"retention.ms": str(max(60_000, int(self.window * 1000)))}
            try:
                try:
                    await self.log.create_topic(
                        self.topic, 1, {"cleanup.policy": "compact,delete", **retention}
                    )
                except InvalidTopic:  # the embedded log has no compaction: retention only
                    await self.log.create_topic(self.topic, 1, retention)
            except TopicAlreadyExists:
                pass
            self._position = await self.log.earliest(self.topic, 0)
            self._tail = spawn(self._follow(), name=f"events idempotency tail {self.topic}")

    async def _follow(self) -> None:
        while True:
            try:
                result = await self.log.fetch(self.topic, 0, self._position, max_records=1000,
                                              max_wait=self.poll_wait)  # fmt: skip
            except OffsetOutOfRange:
                self._position = await self.log.earliest(self.topic, 0)
                continue
            except EventLogError as exc:
                _log.debug("idempotency tail %s: %s", self.topic, exc)
                await asyncio.sleep(1.0)
                continue
            for record in result.records:
                self._apply(record.key, record.value)
                self._position = record.offset + 1
            if result.records:
                self._moved.set()
                self._moved = asyncio.Event()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None or value is None:
            return
        try:
            doc = json.loads(value)
            if "claim" in doc or "release" in doc:
                self._apply_claim(doc)
                return
            name, entry = _decode(doc)
        except (ValueError, KeyError, TypeError):
            return
        self._holders.pop(name, None)
        if entry.created < self._clock() - self.window:
            return
        self._entries[name] = entry
        self._entries.move_to_end(name)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def _apply_claim(self, doc: dict[str, Any]) -> None:
        name = str(doc["key"])
        holder = self._holders.get(name)
        if "release" in doc:
            if holder is not None and holder.id == doc["release"]:
                del self._holders[name]
            return
        if holder is None or self._expired(holder):
            self._holders[name] = _Claim(str(doc["claim"]), float(doc["t"]))

    def _expired(self, claim: _Claim) -> bool:
        return claim.created + self.claim_ttl < self._clock()

    def _replay(self, name: str, request_fingerprint: str) -> StoredAnswer | None:
        entry = self._entries.get(name)
        if entry is None or entry.created < self._clock() - self.window:
            return None
        if entry.fingerprint != request_fingerprint:
            raise HttpProblem(422, "Idempotency-Key was already used for a different request",
                              "idempotency-key-reused")  # fmt: skip
        return entry.answer

    async def run(
        self, key: str, request_fingerprint: str, work: Callable[[], Awaitable[StoredAnswer]]
    ) -> tuple[StoredAnswer, bool]:
        """``(answer, replayed)``: the stored answer for ``key`` (from any node) or ``work()``'s,
        stored in the topic if 2xx."""
        name = f"{self.scope}\n{key}"
        try:
            async with asyncio.timeout(self.timeout):
                await self._ensure_started()
                while True:
                    stored = self._replay(name, request_fingerprint)
                    if stored is not None:
                        return stored, True
                    running = self._running.get(name)
                    if running is None:
                        break
                    await asyncio.shield(running)
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._running[name] = done
        except TimeoutError:
            raise HttpProblem(503, "idempotency store unavailable", "event-log-unavailable",
                              headers={"Retry-After": "1"}) from None  # fmt: skip
        except EventLogError as exc:
            raise problem_for(exc) from exc
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    stored, claim = await self._claim(name, request_fingerprint)
            except TimeoutError:
                if self._holders.get(name) is not None:
                    raise HttpProblem(409, "a request with this Idempotency-Key is in progress",
                                      "idempotency-key-in-use",
                                      headers={"Retry-After": "1"}) from None  # fmt: skip
                raise HttpProblem(503, "idempotency store unavailable", "event-log-unavailable",
                                  headers={"Retry-After": "1"}) from None  # fmt: skip
            except EventLogError as exc:
                raise problem_for(exc) from exc
            if stored is not None:
                return stored, True
            try:
                answer = await work()
            except BaseException:
                await self._write({"key": name, "release": claim}, claim)
                raise
            if 200 <= answer.status < 300:
                await self._remember(name, _Entry(self._clock(), request_fingerprint, answer))
            else:
                await self._write({"key": name, "release": claim}, claim)
            return answer, False
        finally:
            del self._running[name]
            done.set_result(None)

    async def _claim(self, name: str, request_fingerprint: str) -> tuple[StoredAnswer | None, str]:
        """``(answer, "")`` once an answer for ``name`` is known, or ``(None, claim id)`` once
        this node's claim is the one that may produce."""
        while True:
            claim = uuid.uuid4().hex
            doc = {"key": name, "claim": claim, "t": self._clock()}
            offset = await self._write(doc, claim, strict=True)
            while self._position <= offset:
                await self._moved.wait()
            while True:
                stored = self._replay(name, request_fingerprint)
                if stored is not None:
                    return stored, ""
                holder = self._holders.get(name)
                if holder is not None and holder.id == claim:
                    return None, claim
                if holder is None or self._expired(holder):
                    break  # released or abandoned since: claim again
                moved = self._moved
                wait = holder.created + self.claim_ttl - self._clock()
                try:
                    async with asyncio.timeout(max(0.01, wait)):
                        await moved.wait()
                except TimeoutError:
                    pass

    async def _write(self, doc: dict[str, Any], claim: str, *, strict: bool = False) -> int:
        """Append a claim or release record (its own record key: compaction keeps answers);
        its offset.  Only a claim (``strict``) raises when the log refuses it."""
        key = f"{_CLAIM_PREFIX}{doc['key']}\n{claim}".encode()
        record = ProduceRecord(key=key, value=json.dumps(doc, separators=(",", ":")).encode())
        try:
            stored = await self.log.produce(self.topic, [record], partition=0, acks="all",
                                            timeout=self.timeout)  # fmt: skip
        except EventLogError as exc:
            if strict:
                raise
            _log.warning("idempotency release not stored in %s: %s", self.topic, exc)
            return -1
        return stored[0].offset

    async def _remember(self, name: str, entry: _Entry) -> None:
        record = ProduceRecord(key=name.encode(), value=_encode(name, entry).rstrip(b"\n"))
        try:
            await self.log.produce(self.topic, [record], partition=0, acks="all",
                                   timeout=self.timeout)  # fmt: skip
        except EventLogError as exc:  # the record itself is stored: answer anyway
            _log.warning("idempotency answer for a key not stored in %s: %s", self.topic, exc)
        self._entries[name] = entry
        self._entries.move_to_end(name)

    async def close(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            await asyncio.gather(self._tail, return_exceptions=True)
