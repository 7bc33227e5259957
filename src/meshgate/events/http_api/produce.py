"""Produce with the HTTP gateway's rules: size limit, auto-create, bounded wait, error mapping.

``produce_checked`` returns the records' metadata only once the log acknowledged them (with the
requested acks); every failure becomes an ``HttpProblem`` — a record is never reported stored
when the log did not say so. Waiting is bounded by ``timeout``; the log call itself is not
cancelled (a durable write in progress finishes), the client just gets 503.

``ProduceWaits.start`` is the per-request fast path for the same thing: the log's
``produce_into`` (no coroutine, task or timer per request) and one timer for all of a handler's
waits, which fails a future still pending at its deadline with ``BrokerUnavailable``. With
``exit_for`` the future is an ``ExitFuture``: a handler's ``access`` returns it and the plugin
runtime awaits it directly, no coroutine of the handler's own per request.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from meshgate.events.api import (
    Acks,
    EventLog,
    ProduceInto,
    ProduceRecord,
    RecordMetadata,
    record_size,
    records_fit,
)
from meshgate.events.errors import (
    BrokerUnavailable,
    EventLogError,
    TopicAlreadyExists,
    UnknownTopic,
)
from meshgate.events.http_api.problems import HttpProblem, problem_for
from meshgate.events.http_api.settings import BackendFields
from meshgate.proxy.filters.api import Exit

KONG_ACKS: dict[int, Acks] = {-1: "all", 1: "leader", 0: "none"}


def check_sizes(records: Sequence[ProduceRecord], limit: int) -> None:
    if len(records) > 8 and records_fit(records, limit):  # a batch: checked in C loops
        return
    for key, value, headers, _ in records:
        if headers:
            size = record_size(key, value, headers)
        else:  # record_size inlined: this runs once per record of every batch
            size = (len(key) if key else 0) + (len(value) if value else 0)
        if size > limit:
            raise HttpProblem(
                413, f"record of {size} bytes exceeds the limit of {limit} bytes",
                "event-record-too-large",
            )  # fmt: skip


async def ensure_topic(log: EventLog, settings: BackendFields, topic: str) -> None:
    """Create ``topic`` when the settings allow auto-creation (a race with another creator is fine)."""
    try:
        await log.create_topic(topic, settings.auto_create_partitions)
    except TopicAlreadyExists:
        pass


async def _bounded(log: EventLog, topic: str, records: Sequence[ProduceRecord], partition: int | None,
                   acks: Acks, timeout: float) -> list[RecordMetadata]:  # fmt: skip
    call = asyncio.ensure_future(
        log.produce(topic, records, partition=partition, acks=acks, timeout=timeout)
    )
    try:
        return await asyncio.wait_for(asyncio.shield(call), timeout + 1.0)
    except TimeoutError:
        call.add_done_callback(_consume_result)
        raise


def _consume_result(future: asyncio.Future[list[RecordMetadata]]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception never retrieved" warning


async def produce_checked(
    log: EventLog,
    settings: BackendFields,
    topic: str,
    records: Sequence[ProduceRecord],
    *,
    partition: int | None = None,
    acks: Acks = "all",
    timeout: float = 10.0,
) -> list[RecordMetadata]:
    check_sizes(records, settings.max_record_bytes)
    try:
        try:
            return await _bounded(log, topic, records, partition, acks, timeout)
        except UnknownTopic:
            if not settings.auto_create_topic:
                raise
        await ensure_topic(log, settings, topic)
        return await _bounded(log, topic, records, partition, acks, timeout)
    except (EventLogError, TimeoutError) as exc:
        raise problem_for(exc) from exc


Stored = asyncio.Future[list[RecordMetadata]]
# (request context, per-request state, metadata or the log's error) -> the answer
ExitFor = Callable[[Any, Any, "list[RecordMetadata] | BaseException"], BaseException]


class ExitFuture(asyncio.Future[list[RecordMetadata]]):
    """A fast-path produce's future that settles with the request's answer instead of the
    metadata: whatever the log (or the deadline) settles it with goes through
    ``exit_for(ctx, state, outcome)``, and the ``Exit`` that returns (or that ``ctx.exit``
    raises in it) becomes the future's exception, so awaiting it answers the request like a
    coroutine calling ``ctx.exit`` would. ``state`` is what the answer needs of the request
    (dropped, with ``ctx``, once settled). Anything else ``exit_for`` raises is the
    exception instead (the runtime answers 500 as for any plugin failure)."""

    __slots__ = ("_answer_ctx", "_answer_state", "_exit_for")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, exit_for: ExitFor, ctx: Any, state: Any
    ) -> None:
        super().__init__(loop=loop)
        self._exit_for: ExitFor | None = exit_for
        self._answer_ctx = ctx
        self._answer_state = state

    def set_result(self, result: list[RecordMetadata]) -> None:
        super().set_exception(self._answer(result))

    def set_exception(self, exception: type | BaseException) -> None:
        super().set_exception(self._answer(
            exception if isinstance(exception, BaseException) else exception()))  # fmt: skip

    def _answer(self, outcome: list[RecordMetadata] | BaseException) -> BaseException:
        exit_for, ctx, state = self._exit_for, self._answer_ctx, self._answer_state
        self._exit_for = self._answer_ctx = self._answer_state = None
        if exit_for is None:  # cannot happen: a future settles once
            return RuntimeError("ExitFuture settled twice")
        try:
            return exit_for(ctx, state, outcome)
        except Exit as exit_:
            return exit_
        except Exception as exc:
            return exc


class ProduceWaits:
    """Fast-path produces of one handler and their deadlines (``timeout`` after the start).

    Deadlines come in start order, so they wait in a queue and one timer serves them all.
    ``fast_log(log)`` is the log as a ``ProduceInto`` when it has the fast path (check once).
    """

    @staticmethod
    def fast_log(log: EventLog) -> ProduceInto | None:
        return log if isinstance(log, ProduceInto) else None

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waits: deque[tuple[float, Stored]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def start(
        self,
        log: ProduceInto,
        settings: BackendFields,
        topic: str,
        records: Sequence[ProduceRecord],
        partition: int | None,
        acks: Acks,
        *,
        sizes_checked: bool = False,
        exit_for: ExitFor | None = None,
        ctx: Any = None,
        state: Any = None,
    ) -> Stored | None:
        """A future of the records' metadata, or None when the log has no fast path for this
        call (then use ``produce_checked``). Raises ``HttpProblem`` for what is refused at once
        (``sizes_checked``: the caller already ran ``check_sizes``). With ``exit_for``: an
        ``ExitFuture`` of ``exit_for``, ``ctx`` and ``state``."""
        if not sizes_checked:
            check_sizes(records, settings.max_record_bytes)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future: Stored = (loop.create_future() if exit_for is None
                          else ExitFuture(loop, exit_for, ctx, state))  # fmt: skip
        try:
            if not log.produce_into(future, topic, records, partition=partition, acks=acks):
                return None
        except EventLogError as exc:
            raise problem_for(exc) from exc
        waits = self._waits
        while waits and waits[0][1].done():
            waits.popleft()
        deadline = loop.time() + self.timeout
        waits.append((deadline, future))
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire)
        return future

    def _expire(self) -> None:
        self._timer = None
        assert self._loop is not None
        now = self._loop.time()
        waits = self._waits
        while waits and (waits[0][1].done() or waits[0][0] <= now):
            _, future = waits.popleft()
            if not future.done():
                future.set_exception(BrokerUnavailable(
                    f"the event log did not acknowledge the records within {self.timeout}s",
                    retry_after=1.0))  # fmt: skip
        if waits:
            self._timer = self._loop.call_at(waits[0][0], self._expire)
