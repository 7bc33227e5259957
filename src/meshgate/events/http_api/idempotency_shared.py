"""Idempotency-Key across gateway nodes: the answers live in a topic of the event log itself.

``IdempotencyStore`` (one file per node) dedups per node; with ``idempotency_scope: cluster``
kafka-upstream uses this store instead. Every node tails one topic (one partition; on Kafka
created with ``cleanup.policy=compact,delete`` and ``retention.ms`` = the window, so it keeps
the last answer per key and drops expired ones) into memory. An answer is written there
(acks all) before the client gets it.

Semantics: before working on a key it has not seen, a node reads the topic up to its current
end, so a retry sent to any node after the first answer was given is replayed, never produced
again. Two requests with the same key racing on two nodes *at the same time* (neither answered
yet) can both produce — on one node the second waits for the first, across nodes there is no
lock. If writing the answer fails after the record was stored, the answer is still given (the
record is in the log) and a later retry may produce again: at-least-once, as with the file.
The tail keeps every live entry in memory (``max_entries`` newest).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.topic = topic
        self.scope = scope
        self.window = window
        self.timeout = timeout
        self.max_entries = max_entries
        self.poll_wait = poll_wait
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
            name, entry = _decode(json.loads(value))
        except (ValueError, KeyError, TypeError):
            return
        if entry.created < self._clock() - self.window:
            return
        self._entries[name] = entry
        self._entries.move_to_end(name)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def _caught_up(self) -> None:
        """Until the tail has read everything the topic held when this was called."""
        end = await self.log.latest(self.topic, 0)
        while self._position < end:
            await self._moved.wait()

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
                    await self._caught_up()
            except TimeoutError:
                raise HttpProblem(503, "idempotency store unavailable", "event-log-unavailable",
                                  headers={"Retry-After": "1"}) from None  # fmt: skip
            except EventLogError as exc:
                raise problem_for(exc) from exc
            stored = self._replay(name, request_fingerprint)
            if stored is not None:
                return stored, True
            answer = await work()
            if 200 <= answer.status < 300:
                await self._remember(name, _Entry(self._clock(), request_fingerprint, answer))
            return answer, False
        finally:
            del self._running[name]
            done.set_result(None)

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
