"""kafka-consume: records of a topic over HTTP, in the configured ``mode``.

* ``http-get``: long-poll; ``200 {"topic", "records": [...], "cursor"}`` (+ ``meshgate-cursor``
  header) as soon as records exist past the start, or empty records after
  ``long_poll_timeout`` (query ``timeout=<ms>`` may shorten it). Pass ``cursor`` back to
  continue. With ``cloudevents: binary``: one event per response in HTTP binary mode, 204 when
  none came.
* ``server-sent-events``: ``text/event-stream`` kept open (``ctx.stream``); first an id-only
  block with the start cursor, then each record one event whose ``id`` is the cursor after it,
  so ``Last-Event-ID`` resumes exactly; a comment line every ``heartbeat_interval`` when idle.
* ``websocket`` (``ctx.upgrade``): one text frame per record (rendered record + ``cursor``);
  client pings answered, pings sent when idle, a client close ends it.
Writes wait for the client's socket (back-pressure); a client that leaves ends the loop.

Start position, cursor and rendering: ``events.http_api.consume`` / ``cursor`` / ``render``.
Group mode (``consumer_group`` config or ``?group_id=``): the node's member of that group
delivers, partitions are split between nodes, no cursor (commit per ``commit_strategy``).
"""

from __future__ import annotations

import json
from typing import Any

from meshgate.events.api import ConsumedRecord
from meshgate.events.errors import EventLogError, UnknownTopic
from meshgate.events.http_api import cloudevents, ws_frames
from meshgate.events.http_api.acl import TopicAcl, acl_groups
from meshgate.events.http_api.consume import Reader, parse_start, resolve
from meshgate.events.http_api.groups import GroupReaders, GroupSource
from meshgate.events.http_api.logs import event_log_for
from meshgate.events.http_api.params import first
from meshgate.events.http_api.problems import HttpProblem, problem_for
from meshgate.events.http_api.produce import ensure_topic
from meshgate.events.http_api.render import render_record
from meshgate.events.http_api.streams import BlockCache, Source, run_sse, run_websocket
from meshgate.events.http_api.support import answer, cursor_codec, shared_groups
from meshgate.events.http_api.watch import Watchers
from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

JSON = "application/json; charset=utf-8"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def _bad(message: str) -> HttpProblem:
    return HttpProblem(400, message, "event-bad-request")


class Handler(PluginHandler):
    name = "kafka-consume"
    PRIORITY = 751
    VERSION = "0.1.0"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.event_log = log = event_log_for(config, env)
        self.topics = [t.name for t in config.topics]
        self._present: set[str] = set()  # topics seen to exist (auto_create_topic)
        self.codec = cursor_codec(config.cursor_secret)
        self.watchers: Watchers = env.node_resource(
            f"events-watchers {id(log)}", lambda: Watchers(log)
        )
        self.groups: GroupReaders = env.node_resource(
            f"events-groups {id(log)}", lambda: GroupReaders(log)
        )
        self.acl = TopicAcl(config.acl, acl_groups(env.credentials("acls")))
        self.value_format = config.effective_value_format
        self.sse_blocks = BlockCache()

    def access(self, ctx: RequestContext) -> Any:
        return self._handle(ctx)

    async def _handle(self, ctx: RequestContext) -> None:
        try:
            await self._serve(ctx)
        except HttpProblem as problem:
            answer(ctx, problem)

    def render(self, record: ConsumedRecord) -> Any:
        if self.conf.cloudevents != "off":
            event = cloudevents.to_structured(record)
            if event is not None:
                return event
        return render_record(record, self.value_format)

    def _int_arg(self, ctx: RequestContext, name: str, default: int, cap: int) -> int:
        text = first(ctx.query().get(name))
        if text is None:
            return default
        if not text.isdigit():
            raise _bad(f"{name} must be a non-negative integer")
        return min(int(text), cap)

    async def _create_if_missing(self, topic: str) -> None:
        """``auto_create_topic``: a reader of a topic nobody produced to yet waits for its
        records instead of getting 404 (as Kafka consumers do with auto-creation on)."""
        try:
            try:
                await self.event_log.describe_topic(topic)
            except UnknownTopic:
                await ensure_topic(self.event_log, self.conf, topic)
        except EventLogError as exc:
            raise problem_for(exc) from exc
        if len(self._present) >= 1024:
            self._present.clear()
        self._present.add(topic)

    def _group(self, ctx: RequestContext) -> str | None:
        mode = self.conf.consumer_group.mode
        if mode == "manual":
            return self.conf.consumer_group.consumer_group_id
        if mode == "kong_consumer" and ctx.consumer is not None:
            return ctx.consumer.username or ctx.consumer.id
        arg = self.conf.group_id_query_arg
        return first(ctx.query().get(arg)) if arg else None

    async def _source(self, ctx: RequestContext, topic: str) -> Source:
        if self.conf.auto_create_topic and topic not in self._present:
            await self._create_if_missing(topic)
        group = self._group(ctx)
        if group is not None:
            return GroupSource(self.groups, group, topic, reset=self.conf.auto_offset_reset,
                               commit=self.conf.commit_strategy == "auto")  # fmt: skip
        spec = parse_start(ctx.query(), ctx.header("last-event-id"), self.codec, topic,
                           self.conf.auto_offset_reset)  # fmt: skip
        cursor = await resolve(self.event_log, topic, spec)
        return Reader(self.event_log, cursor, self.watchers)

    async def _serve(self, ctx: RequestContext) -> None:
        topic = first(ctx.query().get("topic")) or self.topics[0]
        if topic not in self.topics:
            raise HttpProblem(404, f"topic {topic!r} is not served here", "event-topic-unknown")
        self.acl.check("consume", topic, ctx.consumer, shared_groups(ctx.shared))
        if self.conf.mode == "websocket":
            await self._websocket(ctx, topic)
            return
        if ctx.method not in ("GET", "HEAD"):
            raise HttpProblem(405, "Method not allowed", "event-consume-method")
        max_records = self._int_arg(ctx, "max_records", self.conf.max_records, 10000)
        if self.conf.mode == "server-sent-events":
            await self._sse(ctx, topic, max_records)
            return
        await self._get(ctx, topic, max_records)

    async def _get(self, ctx: RequestContext, topic: str, max_records: int) -> None:
        wait_ms = self._int_arg(ctx, "timeout", self.conf.long_poll_timeout,
                                self.conf.long_poll_timeout)  # fmt: skip
        source = await self._source(ctx, topic)
        if self.conf.cloudevents == "binary":
            max_records = 1
        start = source.cursor
        records = await source.read(max_records, wait_ms / 1000)
        token = self.codec.encode(source.cursor) if source.cursor is not None else None
        headers = {"meshgate-cursor": token} if token else {}
        if self.conf.cloudevents == "binary":
            if not records:
                ctx.exit(204, None, headers)
            mapped = cloudevents.to_http(records[0])
            if mapped is not None:
                ctx.exit(200, mapped[1], {**dict(mapped[0]), **headers})
        body: dict[str, Any] = {"topic": topic, "records": [self.render(r) for r in records]}
        if token:
            body["cursor"] = token
        if start is None:
            body["group_id"] = self._group(ctx)
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        ctx.exit(200, data, {"Content-Type": JSON, **headers})

    async def _sse(self, ctx: RequestContext, topic: str, max_records: int) -> None:
        source = await self._source(ctx, topic)
        codec = self.codec if source.cursor is not None else None
        writer = ctx.stream(200, SSE_HEADERS)
        await run_sse(source, writer, codec, self.render, max_records=max_records,
                      heartbeat=self.conf.heartbeat_interval / 1000,
                      retry_ms=self.conf.sse_retry, blocks=self.sse_blocks)  # fmt: skip

    async def _websocket(self, ctx: RequestContext, topic: str) -> None:
        if (ctx.header("upgrade") or "").lower() != "websocket":
            raise HttpProblem(426, "WebSocket upgrade required", "event-websocket-required")  # fmt: skip
        try:
            accept = ws_frames.accept_key(ctx.header("sec-websocket-key") or "")
        except ws_frames.ProtocolViolation as exc:
            raise _bad(str(exc)) from exc
        source = await self._source(ctx, topic)
        conn = ctx.upgrade({"Upgrade": "websocket", "Connection": "Upgrade",
                        "Sec-WebSocket-Accept": accept})  # fmt: skip
        codec = self.codec if source.cursor is not None else None
        await run_websocket(source, conn, codec, self.render,
                            max_records=self.conf.max_records,
                            heartbeat=self.conf.heartbeat_interval / 1000)  # fmt: skip
