"""``UpstreamProtocol``: one connection to an upstream target, parsing responses with httptools.

It belongs to a pool; while an ``Exchange`` owns it, parser callbacks go straight to that
exchange.  Idle, it waits in its pool with an idle deadline; unsolicited bytes or a close
while idle just retire it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

import httptools
from mypy_extensions import mypyc_attr

from meshgate.proxy.http.clock import monotonic
from meshgate.proxy.http.heads import (
    CRLF,
    RESPONSE_NAMES,
    SEP,
    ResponseFacts,
    add_response_header,
    end_response_head,
    join_bytes,
)
from meshgate.proxy.http.write_batch import receive

if TYPE_CHECKING:
    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.http.pool import PoolKey, UpstreamPools
    from meshgate.proxy.http.websocket import Tunnel

_log = logging.getLogger("meshgate.proxy")


class _SkipBody(Exception):
    """Raised from ``on_headers_complete`` of a HEAD response: the parser must not wait for a body."""


@mypyc_attr(allow_interpreted_subclasses=True)  # policy.LimitedUpstream, when compiled
class UpstreamProtocol(asyncio.Protocol):
    """A pooled HTTP/1.1 client connection."""

    __slots__ = (
        "closed",
        "deadline",
        "exchange",
        "facts",
        "head_only",
        "interim",
        "key",
        "parser",
        "pools",
        "read_timeout",
        "reason",
        "requests",
        "transport",
        "tunnel",
        "upgraded",
    )

    def __init__(self, pools: UpstreamPools, key: PoolKey) -> None:
        self.pools = pools
        self.key = key
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connect
        self.parser = httptools.HttpResponseParser(self)
        self.exchange: Exchange | None = None
        self.tunnel: Tunnel | None = None
        self.requests = 0
        self.deadline = 0.0
        self.read_timeout = 0.0  # > 0 while a response is awaited: each read re-arms it
        self.closed = False
        self.reason = b""
        self.facts: ResponseFacts | None = None  # the head being parsed, classified as it comes
        self.interim = False
        self.head_only = False
        self.upgraded = False

    # ------------------------------------------------------------------ transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        raw = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        pools = self.pools
        raw.set_write_buffer_limits(pools.high_water, pools.low_water)
        batch = pools.batch
        self.transport = raw if batch is None else batch.wrap(raw)
        pools.sweeper.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pools.sweeper.discard(self)
        if self.tunnel is not None:
            self.tunnel.upstream_closed()
            return
        exchange = self.exchange
        if exchange is None:
            self.pools.forget(self)
            return
        self.exchange = None
        exchange.upstream_lost(exc)

    def data_received(self, data: bytes) -> None:
        receive(self.pools.batch, self._received, data)

    def _received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_upstream(data)
            return
        exchange = self.exchange
        if exchange is None:  # bytes nobody asked for: the connection is unusable
            self.transport.close()
            return
        self.pools.sweeper.now = now = monotonic()
        if self.read_timeout:
            self.deadline = now + self.read_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(exchange, data, upgrade.args[0])
            return
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _SkipBody):
                self.parser = httptools.HttpResponseParser(self)
                self.head_only = False
                exchange.on_response_complete()
                return
            _log.error("error relaying an upstream response", exc_info=error.__context__)
            exchange.upstream_failed("upstream-bad-response")
            return
        except httptools.HttpParserError:
            exchange.upstream_failed("upstream-bad-response")
            return
        if exchange.pending_head is not None:
            exchange.flush_head()

    def _upgraded(self, exchange: Exchange, data: bytes, offset: int) -> None:
        """The parser stopped at a 101: the rest of ``data`` is the tunnel's (a method of its
        own: in ``_received`` the tunnel is known to be None before ``feed_data`` set it, and
        a compiled build would trust that)."""
        tunnel = self.tunnel
        if self.upgraded and tunnel is not None:
            if offset < len(data):
                tunnel.from_upstream(data[offset:])
        else:
            exchange.upstream_failed("upstream-bad-response")

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return self.tunnel.upstream_eof()
        return None

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.upstream_write_paused(True)
        elif self.exchange is not None:
            self.exchange.upstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.upstream_write_paused(False)
        elif self.exchange is not None:
            self.exchange.upstream_write_paused(False)

    def on_deadline(self, now: float) -> None:
        if not 0 < self.deadline <= now:
            return
        self.deadline = 0.0
        if self.exchange is not None:
            self.exchange.upstream_timeout()
        else:
            self.transport.close()

    def close(self) -> None:
        self.closed = True
        self.exchange = None
        self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.exchange = None
        self.transport.abort()

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        self.reason = b""
        self.facts = ResponseFacts()
        self.interim = False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        facts = self.facts
        if facts is None:
            return  # a chunked trailer: dropped
        lname = RESPONSE_NAMES.get(name)
        if lname == b"":
            facts.kept.append(join_bytes((name, SEP, value, CRLF)))
        elif lname == b"content-length":
            facts.content_length = int(value) if value.isdigit() else -1
            facts.kept.append(join_bytes((name, SEP, value, CRLF)))
        else:
            add_response_header(facts, name, value)

    def on_headers_complete(self) -> None:
        facts = self.facts
        assert facts is not None
        self.facts = None
        status: int = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 100 Continue, 103 Early Hints...: not relayed
            return
        exchange = self.exchange
        if exchange is not None:
            if facts.extra_tokens is not None:
                end_response_head(facts)
            exchange.on_response_head(status, self.reason, facts, self.parser.should_keep_alive())
            if self.head_only and status != 101:
                raise _SkipBody

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange is not None:
            exchange.on_response_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.upgraded:
            return
        exchange = self.exchange
        if exchange is not None:
            exchange.on_response_complete()

    def __repr__(self) -> str:
        return f"<UpstreamProtocol {self.key!r} requests={self.requests} closed={self.closed}>"
