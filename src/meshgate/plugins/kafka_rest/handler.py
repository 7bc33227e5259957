"""kafka-rest: Confluent REST Proxy produce on a route (the route's path prefix is ignored).

* ``POST .../topics/{topic}`` and ``.../topics/{topic}/partitions/{p}`` — v2 bodies
  (``application/vnd.kafka.{json,binary}.v2+json``) → ``{"offsets": [...], "key_schema_id":
  null, "value_schema_id": null}``; per-record failures are ``error_code`` 1 (non-retriable) or
  2 (retriable) entries; when every record failed the HTTP status says why, with Confluent's
  ``{"error_code": <status>01, "message"}`` body.
* ``POST .../v3/clusters/{cluster}/topics/{topic}/records`` or ``.../topics/{topic}/records`` —
  v3 record(s) → delivery report(s) (``error_code`` 200); one failing record → its HTTP error.
  Several concatenated records (streaming mode) are produced as one batch per partition (a
  failed batch gives each of its records the error report), reports in request order.
* ``GET .../topics`` (names) and ``GET .../topics/{topic}`` (v2 metadata).
Invalid body → 400, unsupported media type → 415, too large → 413, unknown topic → 404.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from meshgate.events.api import ProduceRecord, RecordMetadata, records_fit
from meshgate.events.errors import EventLogError
from meshgate.events.http_api import rest_bodies as rest
from meshgate.events.http_api import rest_fast
from meshgate.events.http_api.acl import TopicAcl, acl_groups
from meshgate.events.http_api.logs import event_log_for
from meshgate.events.http_api.problems import HttpProblem, problem_for
from meshgate.events.http_api.produce import (
    KONG_ACKS,
    ProduceWaits,
    Stored,
    check_sizes,
    produce_checked,
)
from meshgate.events.http_api.rest_answers import V3Reports, v2_stored
from meshgate.events.http_api.support import shared_groups
from meshgate.proxy.filters.api import CompileEnv, Exit, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

_PRODUCE = re.compile(
    r"(?:/v3/clusters/(?P<cluster>[^/]+))?/topics/(?P<topic>[A-Za-z0-9._-]+)"
    r"(?:/partitions/(?P<partition>\d+)|(?P<records>/records))?/?$"
)
_LIST = re.compile(r"/topics/?$")
JSON_V2 = "application/vnd.kafka.v2+json"
JSON = "application/json"
_JSON_PAIRS = (("Content-Type", JSON),)


def _v2_error(problem: HttpProblem) -> HttpProblem:
    return problem.with_body({"error_code": problem.status * 100 + 1, "message": problem.message})


def _v3_error(problem: HttpProblem) -> HttpProblem:
    return problem.with_body(rest.v3_error(problem.status, problem.message))


class Handler(PluginHandler):
    name = "kafka-rest"
    PRIORITY = 751
    VERSION = "0.1.0"
    needs_body = True

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.body_limit = config.max_request_bytes
        self.event_log = event_log_for(config, env)
        self.acks = KONG_ACKS[config.producer_request_acks]
        self.timeout = config.producer_request_timeout / 1000
        self.allowed = set(config.allowed_topics) if config.allowed_topics is not None else None
        self.acl = TopicAcl(config.acl, acl_groups(env.credentials("acls")))
        self.fast_log = ProduceWaits.fast_log(self.event_log)
        self.waits = ProduceWaits(self.timeout)
        self.reports = V3Reports(config.cluster_id)
        self._plain_v3 = self.fast_log is not None and not self.acl.guards("produce")
        self._v3_topics: dict[str, str | None] = {}  # path -> its records topic, or None

    def access(self, ctx: RequestContext) -> Any:
        if self._plain_v3 and "/records" in ctx.path and ctx.method == "POST":
            stored = self._v3_access(ctx)
            if stored is not None:
                return stored
        return self._handle(ctx)

    def _v3_access(self, ctx: RequestContext) -> Stored | None:
        """``access`` for a v3 ``.../records`` produce of keyless JSON values that the log
        takes at once (``_v3_json_values`` without a coroutine: the answer is made by
        ``_v3_sent`` when the records are stored); None: take the general path."""
        path = ctx.path
        topic = self._v3_topics.get(path, "")
        if topic == "":
            topic = self._v3_topic(path)
        if topic is None:
            return None
        body = ctx.raw_body(self.body_limit)
        produced = rest_fast.v3_json_values(body)
        if produced is None or not records_fit(produced, self.conf.max_record_bytes):
            return None
        assert self.fast_log is not None
        try:
            return self.waits.start(self.fast_log, self.conf, topic, produced, None, self.acks,
                                    sizes_checked=True, exit_for=self._v3_sent, ctx=ctx,
                                    state=produced)  # fmt: skip  # records_fit checked them
        except HttpProblem as problem:
            shaped = _v3_error(problem)
            ctx.exit(shaped.status, shaped.body, shaped.headers)

    def _v3_topic(self, path: str) -> str | None:
        """The allowed topic a v3 ``.../records`` path names, or None (remembered per path,
        up to 1,024 paths)."""
        match = _PRODUCE.search(path)
        topic = match.group("topic") if match is not None and match.group("records") else None
        if topic is not None and self.allowed is not None and topic not in self.allowed:
            topic = None
        if len(self._v3_topics) >= 1024:
            self._v3_topics.clear()
        self._v3_topics[path] = topic
        return topic

    def _v3_sent(
        self, ctx: RequestContext, produced: list[ProduceRecord], outcome: Any
    ) -> BaseException:
        """``_v3_access``'s answer (``ExitFuture``): the reports, or the failure — the HTTP
        error for one record, each record's error report for several."""
        if not isinstance(outcome, BaseException):
            return Exit(200, self.reports.json_values(outcome, produced), _JSON_PAIRS)
        if not isinstance(outcome, EventLogError):
            return outcome
        problem = problem_for(outcome)
        if len(produced) == 1:
            shaped = _v3_error(problem)
            ctx.exit(shaped.status, shaped.body, shaped.headers)
        error = json.dumps(rest.v3_error(problem.status, problem.message)).encode()
        return Exit(200, error * len(produced), _JSON_PAIRS)

    async def _handle(self, ctx: RequestContext) -> None:
        v3 = "/records" in ctx.path or "/v3/" in ctx.path
        try:
            status, body, content_type = await self._serve(ctx)
        except HttpProblem as problem:
            shaped = _v3_error(problem) if v3 else _v2_error(problem)
            ctx.exit(shaped.status, shaped.body, shaped.headers)
        ctx.exit(status, body, {"Content-Type": content_type})

    async def _serve(self, ctx: RequestContext) -> tuple[int, bytes, str]:
        path = ctx.path
        if ctx.method == "GET" and _LIST.search(path):
            names = await self._call(self.event_log.list_topics())
            if self.allowed is not None:
                names = [n for n in names if n in self.allowed]
            return 200, json.dumps(sorted(names)).encode(), JSON_V2
        match = _PRODUCE.search(path)
        if match is None:
            raise HttpProblem(404, "Not found", "event-rest-no-endpoint")
        topic = match.group("topic")
        if self.allowed is not None and topic not in self.allowed:
            raise HttpProblem(404, f"topic {topic!r} not found", "event-topic-unknown")
        if ctx.method == "GET" and not match.group("records") and not match.group("partition"):
            return await self._describe(topic)
        if ctx.method != "POST":
            raise HttpProblem(405, "Method not allowed", "event-rest-method")
        self.acl.check("produce", topic, ctx.consumer, shared_groups(ctx.shared))
        body = ctx.raw_body(self.body_limit)
        try:
            if match.group("records") or match.group("cluster"):
                return await self._v3(topic, body)
            fmt = rest.v2_format(ctx.header("content-type"))
            produced = rest_fast.v2_records(body, fmt)
            if produced is None:
                records = rest.parse_v2_produce(body, fmt)
                produced = [_produce_record(r) for r in records]
                partitions = [r.partition for r in records]
            else:
                partitions = [None] * len(produced)
        except rest.BodyError as exc:
            raise HttpProblem(exc.status, str(exc), "event-bad-body") from exc
        partition = match.group("partition")
        if partition is not None:
            partitions = [int(partition)] * len(produced)
        return 200, await self._v2(topic, produced, partitions), JSON_V2

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except EventLogError as exc:
            raise problem_for(exc) from exc

    async def _describe(self, topic: str) -> tuple[int, bytes, str]:
        info = await self._call(self.event_log.describe_topic(topic))
        doc = {
            "name": info.name,
            "configs": info.config,
            "partitions": [
                {"partition": p, "leader": 0, "replicas": [{"broker": 0, "leader": True,
                                                            "in_sync": True}]}
                for p in range(info.partitions)
            ],
        }  # fmt: skip
        return 200, json.dumps(doc).encode(), JSON_V2

    def _start(
        self,
        topic: str,
        partitions: list[int | None],
        produced: list[ProduceRecord],
        sizes_checked: bool = True,
    ) -> Stored | None:
        """The fast path (one wait for all) when every record goes to the same partition
        field and the log takes them at once; None: produce by partition."""
        partition = partitions[0]
        if self.fast_log is None or partitions.count(partition) != len(partitions):
            return None
        return self.waits.start(self.fast_log, self.conf, topic, produced, partition, self.acks,
                                sizes_checked=sizes_checked)  # fmt: skip

    async def _stored(self, stored: Stored) -> list[RecordMetadata]:
        try:
            return await stored
        except EventLogError as exc:
            raise problem_for(exc) from exc

    async def _produce(self, topic: str, records: list[ProduceRecord],
                       partition: int | None) -> list[RecordMetadata]:  # fmt: skip
        return await produce_checked(
            self.event_log, self.conf, topic, records,
            partition=partition, acks=self.acks, timeout=self.timeout,
        )  # fmt: skip

    async def _produce_by_partition(
        self, topic: str, partitions: list[int | None], produced: list[ProduceRecord]
    ) -> tuple[list[list[int]], list[list[RecordMetadata] | BaseException]]:
        """One produce per partition (in request order within each); the record indexes of
        each batch and its result or exception."""
        groups: dict[int | None, list[int]] = {}
        for index, partition in enumerate(partitions):
            groups.setdefault(partition, []).append(index)
        batches = list(groups.values())
        results = await asyncio.gather(
            *(self._produce(topic, [produced[i] for i in batch], partitions[batch[0]])
              for batch in batches),
            return_exceptions=True,
        )  # fmt: skip
        return batches, results

    async def _v2(
        self, topic: str, produced: list[ProduceRecord], partitions: list[int | None]
    ) -> bytes:
        check_sizes(produced, self.conf.max_record_bytes)
        stored = self._start(topic, partitions, produced)
        if stored is not None:  # one batch: its failure is the answer's status
            return v2_stored(await self._stored(stored))
        batches, results = await self._produce_by_partition(topic, partitions, produced)
        outcomes: list[rest.V2Outcome] = [rest.V2Outcome()] * len(produced)
        problems: list[HttpProblem] = []
        for batch, result in zip(batches, results, strict=True):
            if isinstance(result, HttpProblem):
                problems.append(result)
                for i in batch:
                    outcomes[i] = rest.V2Outcome(error=result.message,
                                                 retriable=result.status == 503)  # fmt: skip
            elif isinstance(result, BaseException):
                raise result
            else:
                for i, meta in zip(batch, result, strict=True):
                    outcomes[i] = rest.V2Outcome(metadata=meta)
        if len(problems) == len(batches):
            raise problems[0]
        return json.dumps(rest.v2_response(outcomes)).encode()

    async def _v3_json_values(self, topic: str, produced: list[ProduceRecord]) -> bytes | None:
        """``_v3`` for what ``rest_fast.v3_json_values`` read, every record within the size
        limit; None when the log has no fast path for it (then the general path runs)."""
        stored = self._start(topic, [None], produced)
        if stored is None:
            return None
        try:
            metas = await self._stored(stored)
        except HttpProblem as problem:
            if len(produced) == 1:
                raise
            error = json.dumps(rest.v3_error(problem.status, problem.message)).encode()
            return error * len(produced)
        return self.reports.json_values(metas, produced)

    async def _v3(self, topic: str, body: bytes) -> tuple[int, bytes, str]:
        produced = rest_fast.v3_json_values(body)
        if produced is None:
            parsed = rest.parse_v3_records(body)
            produced = [_produce_record(p.record) for p in parsed]
        else:
            if records_fit(produced, self.conf.max_record_bytes):
                answer = await self._v3_json_values(topic, produced)
                if answer is not None:
                    return 200, answer, JSON
            parsed = [_as_json_v3(rest.RestRecord(None, r.value)) for r in produced]
        partitions = [p.record.partition for p in parsed]
        if len(parsed) == 1:
            stored = self._start(topic, partitions, produced, sizes_checked=False)
            if stored is not None:
                meta = (await self._stored(stored))[0]
            else:
                meta = (await self._produce(topic, produced, parsed[0].record.partition))[0]
            return 200, self.reports.report(meta, parsed[0]), JSON
        # streaming mode: one report per record, in order; a too-large record fails alone
        reports: list[dict[str, Any]] = [{}] * len(parsed)
        sendable: list[int] = []
        for index, record in enumerate(produced):
            try:
                check_sizes([record], self.conf.max_record_bytes)
                sendable.append(index)
            except HttpProblem as problem:
                reports[index] = rest.v3_error(problem.status, problem.message)
        if len(sendable) == len(parsed):
            stored = self._start(topic, partitions, produced)
            if stored is not None:  # one batch: its failure is every record's report
                try:
                    metas = await self._stored(stored)
                except HttpProblem as problem:
                    error = rest.v3_error(problem.status, problem.message)
                    return 200, b"".join(json.dumps(error).encode() for _ in parsed), JSON
                report = self.reports.report
                return (
                    200,
                    b"".join([report(m, i) for m, i in zip(metas, parsed, strict=True)]),
                    JSON,
                )
        batches, results = await self._produce_by_partition(
            topic, [partitions[i] for i in sendable], [produced[i] for i in sendable]
        )
        for batch, result in zip(batches, results, strict=True):
            if isinstance(result, HttpProblem):
                for i in batch:
                    reports[sendable[i]] = rest.v3_error(result.status, result.message)
            elif isinstance(result, BaseException):
                raise result
            else:
                for i, meta in zip(batch, result, strict=True):
                    item = parsed[sendable[i]]
                    reports[sendable[i]] = rest.v3_report(meta, item, self.conf.cluster_id)
        return 200, b"".join(json.dumps(r).encode() for r in reports), JSON


def _produce_record(rec: rest.RestRecord) -> ProduceRecord:
    key, value, _, headers, timestamp_ms = rec
    return _new_tuple(ProduceRecord, (key, value, headers, timestamp_ms))


def _as_json_v3(record: rest.RestRecord) -> rest.V3Record:
    return rest.V3Record(record, "JSON", "JSON")


_new_tuple = tuple.__new__  # a NamedTuple built with no Python __new__ frame
