"""``HttpProxyProtocol``: one client connection — parse requests, pipeline them one at a time,
enforce limits and client timeouts, hand each request to ``dispatch`` and write what comes back.

Requests are served strictly in order: a request parsed while another is in flight waits
(reading paused) until the previous response is complete.  Anything malformed gets its
error response and the connection is closed; bodies are never buffered beyond the
high-water mark.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

import httptools

from meshgate.proxy.http import errors
from meshgate.proxy.http.clock import monotonic
from meshgate.proxy.http.dispatch import dispatch
from meshgate.proxy.http.exchange import buffer_body
from meshgate.proxy.http.heads import (
    CRLF,
    SERVER_LINE,
    HeadError,
    connection_forwarded,
    is_websocket,
    scan_request_headers,
    status_line,
)
from meshgate.proxy.http.request import ProxyRequest, parse_target
from meshgate.proxy.http.server_base import (
    _FORBIDDEN,
    INFO,
    PAUSE_BODY,
    PAUSE_PIPELINE,
    PAUSE_PLUGIN,
    PAUSE_UPGRADE,
    PH_BODY,
    PH_HEAD,
    PH_IDLE,
    PH_WAIT,
    ClientPipe,
    ConnectionBase,
    _log,
    log_enabled,
)
from meshgate.proxy.http.write_batch import receive
from meshgate.proxy.tls.identity import peer_ids_of

if TYPE_CHECKING:
    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.http.websocket import Tunnel

__all__ = ["ClientPipe", "HttpProxyProtocol"]


class HttpProxyProtocol(ConnectionBase):
    """A client connection of an http or https listener."""

    __slots__ = ()

    # ------------------------------------------------------------------ connection events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        batch = self.batch
        self.transport = transport if batch is None else batch.wrap(transport)
        settings = self.settings
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if peer else ""
        self.client_ip_bytes = self.client_ip.encode()
        local = transport.get_extra_info("sockname")
        self.port_bytes = b"%d" % local[1] if local else b""
        self.trusted = settings.is_trusted(self.client_ip)
        self.fwd_static = connection_forwarded(
            self.client_ip_bytes, self.scheme_bytes, self.port_bytes
        )
        if self.tls:
            from meshgate.proxy.tls import sni_of

            self.sni = sni_of(transport) or ""
        transport.set_write_buffer_limits(settings.high_water, settings.low_water)
        self.clock.now = now = monotonic()
        self.deadline = now + settings.client_header_timeout
        self.engine.clients.add(self)
        self.engine.sweeper.add(self)
        if self.guard is not None:
            if self.tls:
                self.peer_ids = peer_ids_of(transport)
            self.denied = not self.guard.allows(self.peer_ids, self.client_ip)

    def data_received(self, data: bytes) -> None:
        receive(self.batch, self._received, data)

    def _received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self.broken:
            return
        if self.upgrade_buffer is not None:
            self.upgrade_buffer.append(data)
            self._pause(PAUSE_UPGRADE)
            return
        self.clock.now = now = monotonic()
        if self.phase == PH_BODY and not self.write_paused:
            self.deadline = now + self.settings.client_body_timeout
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._after_upgrade_request(data[upgrade.args[0] :])
            return
        except httptools.HttpParserCallbackError as error:
            cause = error.__context__
            if isinstance(cause, HeadError):
                self._protocol_error(cause.status, cause.reason, cause.message)
            else:
                _log.error("error handling a request", exc_info=cause)
                self._protocol_error(500, "internal-error", "An unexpected error occurred")
            return
        except httptools.HttpParserError as error:
            self._protocol_error(400, "bad-request", f"Bad request: {error}")
            return
        req = self.parsing
        if req is not None and not req.headers_done:
            self.head_bytes += len(data)
            if self.head_bytes > self.settings.max_header_bytes:
                self._protocol_error(431, "header-too-large", "Request header fields too large")

    # ------------------------------------------------------------------ parser callbacks

    def on_message_begin(self) -> None:
        now = self.clock.now
        self.parsing = req = ProxyRequest(self.client_ip, now)
        if self.denied:
            req.error = _FORBIDDEN
        if self.current is None:
            self.head_bytes = 0
            self.phase = PH_HEAD
            self.deadline = now + self.settings.client_header_timeout

    def on_url(self, url: bytes) -> None:
        req = self.parsing
        assert req is not None
        req.url += url
        if len(req.url) > self.settings.max_url_bytes:
            raise HeadError(414, "uri-too-long", "URI too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        req = self.parsing
        assert req is not None
        if not req.headers_done:  # after the head: chunked trailers, dropped
            req.headers.append((name, value))
            req.head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        req = self.parsing
        assert req is not None
        parser = self.parser
        settings = self.settings
        req.headers_done = True
        req.method = parser.get_method()
        req.keep_alive = keep_alive = parser.should_keep_alive()
        refused: HeadError | None = None
        try:
            no_connection = scan_request_headers(req.headers, req)
        except HeadError as error:
            no_connection, refused = False, error  # raised after the checks that come first
        # Without a Connection header the parser keeps a request alive only for HTTP/1.1 (the
        # one version it accepts whose minor is > 0): no need for get_http_version's str.
        if not (keep_alive and no_connection):
            version = parser.get_http_version()
            if version == "1.0":
                req.http10 = True
            elif version != "1.1":
                raise HeadError(
                    505 if version > "1.1" else 400, "bad-version", "HTTP version not supported"
                )
        if req.head_size + len(req.url) > settings.max_header_bytes:
            raise HeadError(431, "header-too-large", "Request header fields too large")
        if refused is not None:
            raise refused
        req.has_body = req.chunked or req.content_length > 0
        if req.host is None and not req.http10:
            raise HeadError(400, "bad-request", "missing Host header")
        parse_target(req)
        if req.upgrade is not None and not is_websocket(req.upgrade):
            if req.has_body:
                raise HeadError(400, "bad-request", "Upgrade with a request body is not supported")
            req.upgrade = None  # not forwarded: only WebSocket upgrades are proxied
        if settings.max_body_bytes and req.content_length > settings.max_body_bytes:
            raise HeadError(413, "request-too-large", "Request size limit exceeded")
        if self.current is None:
            self.current = req
            if req.has_body:
                self._set_phase(PH_BODY)
            else:
                self.phase = PH_WAIT
                if not self.write_paused:
                    self.deadline = 0.0
            if req.error is None:
                dispatch(self, req)
            else:
                self._start(req)
        else:
            self.waiting.append(req)
            self._pause(PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        req = self.parsing
        if req is None or req.responded:
            return
        req.body_received += len(body)
        limit = self.settings.max_body_bytes
        if limit and req.body_received > limit:
            raise HeadError(413, "request-too-large", "Request size limit exceeded")
        exchange = req.exchange
        if exchange is None:
            ctx = req.ctx
            if ctx is not None and ctx.body_collecting:
                ctx.feed_body(body)  # a plugin reads the body: collected whole, bounded
            else:
                buffer_body(req, body)
        elif not exchange.done:
            exchange.send_body(body)
        if req.body_buffered > self.settings.high_water:
            self._pause(PAUSE_BODY)

    def on_message_complete(self) -> None:
        req = self.parsing
        if req is None:
            return
        self.parsing = None
        req.message_complete = True
        exchange = req.exchange
        if exchange is not None and not exchange.done:
            exchange.body_done()
        elif exchange is None and req.ctx is not None:
            req.ctx.body_complete()  # plugins waiting for the whole body run now
            if self.pause_mask & PAUSE_PLUGIN and req is self.current:
                self._resume(PAUSE_PLUGIN)  # see pause_for_plugin
        if req is self.current:
            if req.responded:
                self._advance()
            else:
                self.phase = PH_WAIT
                if not self.write_paused:
                    self.deadline = 0.0

    # ------------------------------------------------------------------ serving requests

    def _start(self, req: ProxyRequest) -> None:
        if req.error is not None:
            status, reason, message = req.error
            self.reply(req, status, reason, message)
        else:
            dispatch(self, req)

    def reply(
        self,
        req: ProxyRequest,
        status: int,
        reason: str,
        message: str,
        *,
        extra: bytes = b"",
        upgrade: bool = False,
        close: bool = False,
    ) -> None:
        """Answer ``req`` ourselves with a canned response."""
        close = close or self._must_close(req)
        if upgrade and not close:
            extra += b"Connection: Upgrade\r\n"
        data = errors.error_response(
            status,
            "" if req.method == b"HEAD" else message,
            reason,
            close=close,
            server_tokens=self.settings.server_tokens,
            extra=extra,
            http10=req.http10 and not upgrade,
        )
        self.transport.write(data)
        self._finish(req, req.exchange, status, len(data), reason, close)

    def respond(
        self, req: ProxyRequest, status: int, lines: list[bytes], body: bytes, reason: str
    ) -> None:
        """Answer ``req`` with a response a plugin made (``lines``: ready header lines)."""
        close = status == 413 or self._must_close(req)  # 413: the client sends too much
        head = [status_line(status, errors.reason_phrase(status)), *lines]
        head.append(b"Content-Length: %d\r\n" % len(body))
        if self.settings.server_tokens:
            head.append(SERVER_LINE)
        if close:
            head.append(b"Connection: close\r\n")
        elif req.http10:
            head.append(b"Connection: keep-alive\r\n")
        head.append(errors.date_line())
        head.append(CRLF)
        if req.method != b"HEAD":
            head.append(body)
        data = b"".join(head)
        self.transport.write(data)
        self._finish(req, req.exchange, status, len(data), reason, close)

    def exchange_done(self, exchange: Exchange) -> None:
        req = exchange.req
        if (
            exchange.close_after
            or not req.keep_alive
            or self.half_closed
            or self.upgrade_buffer is not None
            or not req.message_complete
            or self.engine.state.draining
        ):
            close = exchange.close_after or self._must_close(req)
            self._finish(
                req, exchange, exchange.status, exchange.bytes_sent, exchange.reason, close
            )
            return
        # The common case, inlined: a complete keep-alive request whose response is out.
        req.responded = True
        if req.ctx is not None or self.settings.on_access is not None or log_enabled(INFO):
            self._log(req, exchange, exchange.status, exchange.bytes_sent, exchange.reason)
        req.exchange = None  # break the req <-> exchange cycle: both are freed right away
        self._advance()

    def exchange_failed(self, exchange: Exchange, status: int, reason: str, message: str) -> None:
        self.reply(exchange.req, status, reason, message)

    def exchange_aborted(self, exchange: Exchange) -> None:
        req = exchange.req
        req.responded = True
        self._log(req, exchange, exchange.status, exchange.bytes_sent, exchange.reason)
        self.broken = True
        self.transport.abort()

    def start_tunnel(self, exchange: Exchange, tunnel: Tunnel) -> None:
        req = exchange.req
        req.responded = True
        self._log(req, exchange, 101, exchange.bytes_sent, "")
        self._hand_over(tunnel)

    def end_stream(self, req: ProxyRequest, status: int, bytes_sent: int, close: bool) -> None:
        self._finish(req, None, status, bytes_sent, "", close)

    def take_over(self, req: ProxyRequest, head: bytes, pipe: ClientPipe) -> None:
        """A plugin answered 101: the connection becomes ``pipe``'s (no more HTTP)."""
        self.transport.write(head)
        req.responded = True
        self._log(req, req.exchange, 101, len(head), "")
        self._hand_over(pipe)

    def _finish(
        self,
        req: ProxyRequest,
        exchange: Exchange | None,
        status: int,
        bytes_sent: int,
        reason: str,
        close: bool,
    ) -> None:
        req.responded = True
        self._log(req, exchange, status, bytes_sent, reason)
        if close:
            self.broken = True
            self.transport.close()
        elif req.message_complete:
            self._advance()
        # else: the rest of a body-less request is in the buffer being parsed;
        # on_message_complete advances.

    def _advance(self) -> None:
        self.current = None
        if self.fatal is not None:
            status, reason, message = self.fatal
            self._send_fatal(status, reason, message)
            return
        if self.waiting:
            nxt = self.waiting.popleft()
            self.current = nxt
            if not self.waiting:
                self._resume(PAUSE_PIPELINE)
            self._set_phase(PH_WAIT if nxt.message_complete else PH_BODY)
            self._start(nxt)
            return
        if self.pause_mask:
            self._resume(PAUSE_PIPELINE)
        if self.parsing is not None:
            self.head_bytes = 0
            self._set_phase(PH_HEAD)
        else:
            self.phase = PH_IDLE
            if not self.write_paused:
                self.deadline = self.clock.now + self.settings.keepalive_timeout

    def _after_upgrade_request(self, rest: bytes) -> None:
        """The parser stopped after a request with Upgrade (or CONNECT)."""
        pending = self.current if self.current is not None and not self.waiting else None
        if self.waiting:
            pending = self.waiting[-1]
        if pending is not None and pending.upgrade is not None and not pending.responded:
            self.upgrade_buffer = [rest] if rest else []
            self._pause(PAUSE_UPGRADE)
            return
        # An upgrade we do not forward (h2c...): carry on parsing HTTP/1.1 with a fresh parser.
        self.parser = httptools.HttpRequestParser(self)
        if rest:
            self.data_received(rest)
