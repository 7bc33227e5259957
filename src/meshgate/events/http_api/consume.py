"""Reading a topic for HTTP clients: where to start, and batches that advance a cursor.

Start position (query parameters, first match wins): ``cursor=<token>`` (or the
``Last-Event-ID`` header, or ``lastEventId=`` — what EventSource sends when reconnecting);
``offset=N`` (with ``partition=P``: only that partition, else every partition at N);
``timestamp=<epoch ms | ISO 8601>`` (the first record at or after it, per partition);
``from=earliest|latest``; otherwise the configured ``auto_offset_reset``.

``Reader.read`` returns records of every partition past the cursor, merged by timestamp
while keeping each partition's offset order, at most ``max_records``; it waits up to ``max_wait`` for the
first record through the shared ``Watchers``. The cursor moves only over returned records, so
``cursor_after(i)`` for the i-th record resumes exactly after it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from meshgate.events.api import ConsumedRecord, EventLog, OffsetReset
from meshgate.events.errors import EventLogError
from meshgate.events.http_api.cursor import Cursor, CursorCodec, CursorError
from meshgate.events.http_api.params import first
from meshgate.events.http_api.problems import HttpProblem, problem_for
from meshgate.events.http_api.watch import Watchers

StartKind = Literal["cursor", "offset", "timestamp", "earliest", "latest"]


@dataclass(frozen=True, slots=True)
class StartSpec:
    kind: StartKind
    cursor: Cursor | None = None
    offset: int = 0
    partition: int | None = None
    timestamp_ms: int = 0


def _bad(message: str) -> HttpProblem:
    return HttpProblem(400, message, "event-bad-position")


def _int_param(query: Mapping[str, Sequence[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    text = values[0]
    if not (text.isascii() and text.isdigit()):
        raise _bad(f"{name} must be a non-negative integer")
    return int(text)


def parse_timestamp(text: str) -> int:
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad("timestamp must be epoch milliseconds or ISO 8601") from exc
    if moment.tzinfo is None:
        raise _bad("timestamp needs a time zone (e.g. Z)")
    return int(moment.timestamp() * 1000)


def parse_start(
    query: Mapping[str, Sequence[str]],
    last_event_id: str | None,
    codec: CursorCodec,
    topic: str,
    default: OffsetReset,
) -> StartSpec:
    token = first(query.get("cursor")) or last_event_id or first(query.get("lastEventId"))
    if token:
        try:
            cursor = codec.decode(token)
        except CursorError as exc:
            raise HttpProblem(400, f"invalid cursor: {exc}", "event-bad-cursor") from exc
        if cursor.topic != topic:
            raise HttpProblem(400, "cursor belongs to another topic", "event-bad-cursor")
        return StartSpec("cursor", cursor=cursor)
    offset = _int_param(query, "offset")
    partition = _int_param(query, "partition")
    if offset is not None:
        return StartSpec("offset", offset=offset, partition=partition)
    stamp = first(query.get("timestamp"))
    if stamp:
        return StartSpec("timestamp", timestamp_ms=parse_timestamp(stamp), partition=partition)
    origin = (query.get("from") or [default])[0]
    if origin not in ("earliest", "latest"):
        raise _bad("from must be earliest or latest")
    return StartSpec(origin, partition=partition)  # type: ignore[arg-type]


async def resolve(log: EventLog, topic: str, spec: StartSpec) -> Cursor:
    """The cursor ``spec`` means for ``topic`` now (``HttpProblem`` on log errors)."""
    try:
        partitions = (await log.describe_topic(topic)).partitions
        wanted = range(partitions)
        if spec.partition is not None:
            if spec.partition >= partitions:
                raise HttpProblem(404, f"topic {topic!r} has no partition {spec.partition}",
                                  "event-partition-unknown")  # fmt: skip
            wanted = range(spec.partition, spec.partition + 1)
        if spec.kind == "cursor":
            assert spec.cursor is not None
            positions = {p: o for p, o in spec.cursor.positions.items() if p < partitions}
            for p in wanted:  # partitions added since the cursor was made: from their start
                if p not in positions:
                    positions[p] = await log.earliest(topic, p)
            return Cursor(topic, positions)
        if spec.kind == "offset":
            return Cursor(topic, {p: spec.offset for p in wanted})
        if spec.kind == "timestamp":
            found = await asyncio.gather(
                *(log.offsets_for_time(topic, p, spec.timestamp_ms) for p in wanted)
            )
            return Cursor(topic, dict(zip(wanted, found, strict=True)))
        edge = log.earliest if spec.kind == "earliest" else log.latest
        offsets = await asyncio.gather(*(edge(topic, p) for p in wanted))
        return Cursor(topic, dict(zip(wanted, offsets, strict=True)))
    except EventLogError as exc:
        raise problem_for(exc) from exc


class Reader:
    """Reads ``cursor.topic`` from ``cursor``'s positions; see the module docstring."""

    def __init__(self, log: EventLog, cursor: Cursor, watchers: Watchers | None = None) -> None:
        self.log = log
        self.cursor = cursor
        self.watchers = watchers

    async def _fetch_all(self, max_records: int, max_bytes: int) -> list[ConsumedRecord]:
        topic = self.cursor.topic
        watchers = self.watchers
        if watchers is not None:  # readers at the same position share one read
            fetches = [watchers.fetch(topic, p, o, max_records, max_bytes)
                       for p, o in self.cursor.positions.items()
                       if not watchers.at_end(topic, p, o)]  # fmt: skip
            if not fetches:
                return []
        else:
            fetches = [self.log.fetch(topic, p, o, max_records=max_records, max_bytes=max_bytes)
                       for p, o in self.cursor.positions.items()]  # fmt: skip
        if len(fetches) == 1:
            return list((await fetches[0]).records[:max_records])
        results = await asyncio.gather(*fetches)
        # a k-way merge keeps each partition's offset order even when timestamps go backwards
        merged = heapq.merge(*(res.records for res in results), key=_merge_key)
        return list(itertools.islice(merged, max_records))

    async def read(
        self, max_records: int = 100, max_wait: float = 0.0, max_bytes: int = 1024 * 1024
    ) -> list[ConsumedRecord]:
        try:
            records = await self._fetch_all(max_records, max_bytes)
            if not records and max_wait > 0:
                if self.watchers is not None:
                    positions = self.cursor.positions
                    woke = await self.watchers.wait(
                        self.cursor.topic, list(positions), positions, max_wait
                    )
                else:  # no watchers: a plain long-poll of the first partition
                    first = next(iter(self.cursor.positions.items()), None)
                    woke = first is not None
                    if first is not None:
                        await self.log.fetch(
                            self.cursor.topic, first[0], first[1], max_records=1, max_wait=max_wait
                        )
                if woke:
                    records = await self._fetch_all(max_records, max_bytes)
        except EventLogError as exc:
            raise problem_for(exc) from exc
        positions = dict(self.cursor.positions)
        for r in records:
            positions[r.partition] = r.offset + 1
        self.cursor = Cursor(self.cursor.topic, positions)
        return records


def _merge_key(record: ConsumedRecord) -> tuple[int, int]:
    return record.timestamp_ms, record.partition


def cursors_along(start: Cursor, records: Sequence[ConsumedRecord]) -> list[Cursor]:
    """The cursor after each of ``records`` (read in this order from ``start``)."""
    out: list[Cursor] = []
    current = start
    for r in records:
        current = current.advanced(r.partition, r.offset + 1)
        out.append(current)
    return out
