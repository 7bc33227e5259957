"""kafka-upstream: the request becomes a record (Kong's JSON envelope, the raw body, or a
CloudEvent) on ``topic``; the client gets 200 ``{"message": "message sent", "topic",
"partition", "offset", "timestamp"}`` only after the log acknowledged it (``producer_async``:
202 at once). Errors: 404 unknown topic (unless ``auto_create_topic``), 413 too large, 503 +
Retry-After when the log is down or slow, 403/401 by the topic ACL, 400 for a CloudEvent or
body that does not parse.

``Idempotency-Key`` (``idempotency_window`` > 0): a repeat within the window gets the first
answer (``Idempotent-Replayed: true``) and writes nothing. With ``reply_topic`` the record
carries a correlation id and the reply topic; the answer is the reply record (status from its
``:status`` header, body = value) or 504 after ``reply_timeout``; ``Prefer: respond-async``
answers 202 with ``Location: <path>/replies/<token>``, which any node answers (``Prefer:
wait=N`` to wait): the reply, or 202 again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from meshgate.events.api import ConsumedRecord, ProduceRecord, RecordMetadata
from meshgate.events.errors import EventLogError
from meshgate.events.http_api import cloudevents
from meshgate.events.http_api.acl import TopicAcl, acl_groups
from meshgate.events.http_api.cursor import CursorError
from meshgate.events.http_api.envelope import EnvelopeError, build_envelope
from meshgate.events.http_api.idempotency import IdempotencyStore, StoredAnswer, fingerprint
from meshgate.events.http_api.idempotency_shared import SharedIdempotencyStore
from meshgate.events.http_api.logs import embedded_path, event_log_for, runtime_dir
from meshgate.events.http_api.params import first
from meshgate.events.http_api.problems import HttpProblem, problem_for, unavailable
from meshgate.events.http_api.produce import (
    KONG_ACKS,
    ProduceWaits,
    Stored,
    check_sizes,
    produce_checked,
)
from meshgate.events.http_api.replies import ReplyRouter, header_value
from meshgate.events.http_api.support import answer, cursor_codec, record_headers, shared_groups
from meshgate.proxy.filters.api import CompileEnv, Exit, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .schema import Config

_log = logging.getLogger("meshgate.plugins.kafka-upstream")
_REPLY_PATH = re.compile(r"/replies/([0-9a-f]{32}\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)$")
_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait=(\d+)")
JSON = "application/json; charset=utf-8"
_JSON_PAIRS = (("Content-Type", JSON),)
_NO_HEADERS: Mapping[str, Sequence[str]] = MappingProxyType({})
_SENT = b'{"message":"message sent","topic":%b,"partition":%d,"offset":%d,"timestamp":%d}'


def _json(status: int, body: Any, **headers: str) -> StoredAnswer:
    data = json.dumps(body, separators=(",", ":")).encode()
    return StoredAnswer(status, (("Content-Type", JSON), *headers.items()), data)


def _bad(message: str) -> HttpProblem:
    return HttpProblem(400, message, "event-bad-request")


class Handler(PluginHandler):
    name = "kafka-upstream"
    PRIORITY = 751
    VERSION = "0.1.0"
    needs_body = True

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.body_limit = config.max_record_bytes
        self.event_log = event_log_for(config, env)
        self.acks = KONG_ACKS[config.producer_request_acks]
        self.timeout = config.producer_request_timeout / 1000
        self.allowed_topics = {config.topic, *(config.allowed_topics or ())}
        self.acl = TopicAcl(config.acl, acl_groups(env.credentials("acls")))
        self.idempotency: IdempotencyStore | SharedIdempotencyStore | None = None
        if config.idempotency_window > 0 and config.idempotency_scope == "cluster":
            topic, scope, window = config.idempotency_topic, instance.id, config.idempotency_window
            self.idempotency = env.node_resource(
                f"events-idempotency-shared {id(self.event_log)} {topic} {scope}",
                lambda: SharedIdempotencyStore(self.event_log, topic, scope, window),
            )
        elif config.idempotency_window > 0:
            base = (Path(config.idempotency_path) if config.idempotency_path
                    else (embedded_path(config) if config.backend == "embedded"
                          else runtime_dir()) / "~http")  # fmt: skip
            path = base / f"idempotency-{instance.id}.jsonl"
            self.idempotency = env.node_resource(
                f"events-idempotency {path}",
                lambda: IdempotencyStore(path, config.idempotency_window),
            )
        self.replies: ReplyRouter | None = None
        if config.reply_topic:
            topic, header = config.reply_topic, config.correlation_header
            self.replies = env.node_resource(
                f"events-replies {id(self.event_log)} {topic} {header.lower()}",
                lambda: ReplyRouter(self.event_log, topic, header),
            )
            self.codec = cursor_codec(config.cursor_secret)
        self._in_flight = 0
        sync = self.replies is None and not config.producer_async
        self.fast_log = ProduceWaits.fast_log(self.event_log) if sync else None
        self.waits = ProduceWaits(self.timeout)
        self._topic_json: dict[str, bytes] = {}
        self._exit_for = self._sent  # bound once, not per request
        self._plain = (self.fast_log is not None and not config.topics_query_arg
                       and not self.acl.guards("produce") and config.message_format == "raw"
                       and not config.record_headers and not config.key_query_arg
                       and not config.key_header)  # fmt: skip

    def access(self, ctx: RequestContext) -> Any:
        if self._plain:
            stored = self._plain_access(ctx)
            if stored is not None:
                return stored
        if self.replies is not None and ctx.method == "GET":
            match = _REPLY_PATH.search(ctx.path)
            if match:
                return self._answer(ctx, self._poll(ctx, match.group(1)))
        try:
            topics = self._topics(ctx)
            if self.acl.guards("produce"):
                for topic in topics:
                    self.acl.check("produce", topic, ctx.consumer, shared_groups(ctx.shared))
            body = ctx.raw_body(self.body_limit)
            record = self._record(ctx, body)
            key = ctx.header(self.conf.idempotency_header) if self.idempotency else None
            if key is None and self.fast_log is not None and len(topics) == 1:
                stored = self.waits.start(self.fast_log, self.conf, topics[0], [record],
                                          self.conf.partition, self.acks,
                                          exit_for=self._exit_for, ctx=ctx)  # fmt: skip
                if stored is not None:
                    return stored
        except HttpProblem as problem:
            answer(ctx, self._shaped(problem))
        return self._answer(ctx, self._serve(ctx, topics, body, record, key))

    def _plain_access(self, ctx: RequestContext) -> Stored | None:
        """``access`` for a plain request on a plain config (``_plain``): the raw body to
        ``topic``, no CloudEvent, no idempotency key; None: not one, take the general path."""
        content_type = ctx.header("content-type")
        if self.conf.cloudevents and (
            (content_type and content_type[:23].lower() == "application/cloudevents")
            or ctx.header("ce-specversion") is not None
        ):
            return None
        if self.idempotency is not None and ctx.header(self.conf.idempotency_header) is not None:
            return None
        body = ctx.raw_body(self.body_limit)
        headers = (("content-type", content_type.encode("latin-1")),) if content_type else ()
        assert self.fast_log is not None
        try:
            return self.waits.start(self.fast_log, self.conf, self.conf.topic,
                                    [_new_tuple(ProduceRecord, (None, body, headers, None))],
                                    self.conf.partition, self.acks,
                                    exit_for=self._exit_for, ctx=ctx)  # fmt: skip
        except HttpProblem as problem:
            answer(ctx, self._shaped(problem))

    def _sent(self, ctx: RequestContext, _state: None, outcome: Any) -> BaseException:
        """The fast path's answer (``ExitFuture``): 200 once the log stored the record."""
        if isinstance(outcome, BaseException):
            if isinstance(outcome, EventLogError):
                answer(ctx, self._shaped(problem_for(outcome)))
            return outcome
        meta = outcome[0]
        topic = self._topic_json.get(meta.topic)
        if topic is None:
            topic = self._topic_json[meta.topic] = json.dumps(meta.topic).encode()
        return Exit(200, _SENT % (topic, meta.partition, meta.offset, meta.timestamp),
                    _JSON_PAIRS)  # fmt: skip

    async def _answer(self, ctx: RequestContext, serving: Awaitable[StoredAnswer]) -> None:
        try:
            answer_ = await serving
        except HttpProblem as problem:
            answer(ctx, problem)
        ctx.exit(answer_.status, answer_.body, dict(answer_.headers))

    async def _serve(
        self, ctx: RequestContext, topics: list[str], body: bytes, record: ProduceRecord,
        key: str | None,
    ) -> StoredAnswer:  # fmt: skip
        if key is None or self.idempotency is None:
            return await self._produce(ctx, topics, record)
        consumer = ctx.consumer.id if ctx.consumer is not None else ""
        print_ = fingerprint(ctx.method, f"{ctx.path}?{ctx.raw_query}|{','.join(topics)}", body)
        stored, replayed = await self.idempotency.run(
            f"{consumer}\n{key}", print_, lambda: self._produce(ctx, topics, record)
        )
        if replayed:
            return StoredAnswer(stored.status, (*stored.headers, ("Idempotent-Replayed", "true")),
                                stored.body)  # fmt: skip
        return stored

    def _topics(self, ctx: RequestContext) -> list[str]:
        arg = self.conf.topics_query_arg
        named = (ctx.query().get(arg) or [""])[0] if arg else ""
        if not named:
            return [self.conf.topic]
        topics = [t.strip() for t in named.split(",") if t.strip()]
        for topic in topics:
            if topic not in self.allowed_topics:
                raise _bad(f"topic {topic!r} is not allowed")
        return topics or [self.conf.topic]

    def _record(self, ctx: RequestContext, body: bytes) -> ProduceRecord:
        conf = self.conf
        key: bytes | None = None
        try:
            mode = (cloudevents.mode_for(ctx.header("content-type"),
                                         ctx.header("ce-specversion") is not None)
                    if conf.cloudevents else None)  # fmt: skip
            needs_headers = mode == "binary" or conf.message_format != "raw" or conf.record_headers
            headers = ctx.headers() if needs_headers else _NO_HEADERS
            if mode == "binary":
                event = cloudevents.from_http_binary(headers, body)
            elif mode == "structured":
                event = cloudevents.from_http_structured(ctx.header("content-type") or "", body)
        except cloudevents.CloudEventError as exc:
            raise HttpProblem(400, str(exc), "event-bad-cloudevent") from exc
        if mode is not None:
            key, value, out_headers = event.key, event.value, list(event.headers)
        elif conf.message_format == "raw":
            value, out_headers = body, []
            content_type = ctx.header("content-type")
            if content_type:
                out_headers.append(("content-type", content_type.encode("latin-1")))
        else:
            try:
                value = build_envelope(
                    method=ctx.method, path=ctx.path, query=ctx.query(), headers=headers,
                    body=body, forward_method=conf.forward_method, forward_uri=conf.forward_uri,
                    forward_headers=conf.forward_headers, forward_body=conf.forward_body,
                )  # fmt: skip
            except EnvelopeError as exc:
                raise _bad(str(exc)) from exc
            out_headers = []
        if conf.record_headers:
            out_headers += record_headers(headers, conf.record_headers)
        explicit = None
        if conf.key_query_arg:
            explicit = first(ctx.query().get(conf.key_query_arg))
        if explicit is None and conf.key_header:
            explicit = ctx.header(conf.key_header)
        if explicit is not None:
            key = explicit.encode("utf-8")
        return ProduceRecord(key=key, value=value, headers=tuple(out_headers))

    async def _produce(
        self, ctx: RequestContext, topics: list[str], record: ProduceRecord
    ) -> StoredAnswer:
        conf = self.conf
        if self.replies is None and conf.producer_async:
            return self._produce_later(topics, record)
        cid, waiter, location = "", None, None
        if self.replies is not None:
            cid = uuid.uuid4().hex
            record = ProduceRecord(record.key, record.value, (
                *record.headers,
                (conf.correlation_header.lower(), cid.encode()),
                (conf.reply_to_header.lower(), self.replies.topic.encode()),
            ))  # fmt: skip
            await self.replies.start()
            if "respond-async" in (ctx.header("prefer") or "").lower():
                token = f"{cid}.{self.codec.encode(await self.replies.position())}"
                location = f"{ctx.path.rstrip('/')}/replies/{token}"
            else:
                waiter = self.replies.register(cid)
        try:
            stored = await asyncio.gather(*(self._one(t, record) for t in topics))
            if location is not None:
                return _json(202, {"message": "request accepted", "correlation_id": cid},
                             Location=location)  # fmt: skip
            if waiter is not None:
                try:
                    reply = await asyncio.wait_for(waiter, conf.reply_timeout / 1000)
                except TimeoutError:
                    raise HttpProblem(504, "no reply within reply_timeout",
                                      "event-reply-timeout") from None  # fmt: skip
                return _reply_answer(reply, cid)
        finally:
            if waiter is not None and self.replies is not None:
                self.replies.forget(cid)
        first = stored[0]
        body: dict[str, Any] = {"message": "message sent", "topic": first.topic,
                                "partition": first.partition, "offset": first.offset,
                                "timestamp": first.timestamp}  # fmt: skip
        if len(stored) > 1:
            body["records"] = [{"topic": m.topic, "partition": m.partition, "offset": m.offset}
                               for m in stored]  # fmt: skip
        return _json(200, body)

    async def _one(self, topic: str, record: ProduceRecord) -> RecordMetadata:
        try:
            metas = await produce_checked(self.event_log, self.conf, topic, [record],
                                          partition=self.conf.partition, acks=self.acks,
                                          timeout=self.timeout)  # fmt: skip
        except HttpProblem as problem:
            raise self._shaped(problem) from None
        return metas[0]

    def _shaped(self, problem: HttpProblem) -> HttpProblem:
        """Kong's body for a failed send (502) unless ``return_error_message``."""
        if self.conf.error_handling.get("return_error_message") or problem.status != 502:
            return problem
        return problem.with_body({"message": "Bad Gateway",
                                  "error": "could not send message to topic"})  # fmt: skip

    def _produce_later(self, topics: list[str], record: ProduceRecord) -> StoredAnswer:
        check_sizes([record], self.conf.max_record_bytes)
        limit = self.conf.producer_async_buffering_limits_messages_in_memory
        if self._in_flight + len(topics) > limit:
            raise unavailable("too many records waiting for the event log")
        from meshgate.tasks import spawn

        for topic in topics:
            self._in_flight += 1
            spawn(self._background(topic, record), name=f"kafka-upstream async {topic}")
        return _json(202, {"message": "message accepted"})

    async def _background(self, topic: str, record: ProduceRecord) -> None:
        try:
            await self._one(topic, record)
        except HttpProblem as problem:
            _log.warning("async produce to %s failed: %s", topic, problem.message)
        finally:
            self._in_flight -= 1

    async def _poll(self, ctx: RequestContext, token: str) -> StoredAnswer:
        assert self.replies is not None
        cid, _, cursor_token = token.partition(".")
        try:
            cursor = self.codec.decode(cursor_token)
        except CursorError as exc:
            raise HttpProblem(400, f"invalid reply token: {exc}", "event-bad-cursor") from exc
        if cursor.topic != self.replies.topic:
            raise HttpProblem(400, "invalid reply token", "event-bad-cursor")
        await self.replies.start()
        reply = self.replies.kept(cid) or await self.replies.scan(cid, cursor)
        if reply is None:
            wait = _PREFER_WAIT.search((ctx.header("prefer") or "").lower())
            seconds = min(int(wait.group(1)), self.conf.reply_timeout / 1000) if wait else 0.0
            reply = await self.replies.wait(cid, seconds)
            self.replies.forget(cid)
        if reply is None:
            return _json(202, {"message": "no reply yet", "correlation_id": cid},
                         Location=ctx.path, **{"Retry-After": "1"})  # fmt: skip
        return _reply_answer(reply, cid)


def _reply_answer(reply: ConsumedRecord, cid: str) -> StoredAnswer:
    status_raw = header_value(reply, ":status") or header_value(reply, "status") or b"200"
    try:
        status = int(status_raw)
    except ValueError:
        status = 200
    if not 200 <= status <= 599:
        status = 502
    headers = [("meshgate-correlation-id", cid)]
    content_type = header_value(reply, "content-type")
    if content_type:
        headers.append(("Content-Type", content_type.decode("latin-1")))
    return StoredAnswer(status, tuple(headers), reply.value or b"")


_new_tuple = tuple.__new__  # a NamedTuple built with no Python __new__ frame
