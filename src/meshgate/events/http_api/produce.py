"""Produce with the HTTP gateway's rules: size limit, auto-create, bounded wait, error mapping.

``produce_checked`` returns the records' metadata only once the log acknowledged them (with the
requested acks); every failure becomes an ``HttpProblem`` — a record is never reported stored
when the log did not say so. Waiting is bounded by ``timeout``; the log call itself is not
cancelled (a durable write in progress finishes), the client just gets 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from meshgate.events.api import Acks, EventLog, ProduceRecord, RecordMetadata, record_size
from meshgate.events.errors import EventLogError, TopicAlreadyExists, UnknownTopic
from meshgate.events.http_api.problems import HttpProblem, problem_for
from meshgate.events.http_api.settings import BackendFields

KONG_ACKS: dict[int, Acks] = {-1: "all", 1: "leader", 0: "none"}


def check_sizes(records: Sequence[ProduceRecord], limit: int) -> None:
    for rec in records:
        size = record_size(rec.key, rec.value, rec.headers)
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
