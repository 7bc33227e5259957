"""``ConnectionBase``: the state of one client connection and its slower paths — connection
events, read pausing (a bit per reason), client timeouts by phase, protocol errors, a plugin's
streamed response head, hand-over after a 101 and the access log.

``server.HttpProxyProtocol`` adds the parser callbacks and the serving of requests (the hot
path); the split is only for size — one object per connection, its slots defined here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

import httptools

from meshgate.proxy.http import errors
from meshgate.proxy.http.accesslog import access_logger, build_record
from meshgate.proxy.http.heads import CRLF, SERVER_LINE, status_line
from meshgate.proxy.http.request import ProxyRequest, unread_body_closes
from meshgate.proxy.tls.permissions import FORBIDDEN_MESSAGE, FORBIDDEN_REASON

if TYPE_CHECKING:
    from meshgate.proxy.http.engine import HttpEngine
    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.tls.permissions import InboundGuard

_log = logging.getLogger("meshgate.proxy")
INFO = logging.INFO
log_enabled = access_logger.isEnabledFor

# What the connection is waiting for; decides which client timeout applies.
PH_IDLE, PH_HEAD, PH_BODY, PH_WAIT = 0, 1, 2, 3
# Why reading is paused (a bit each).
PAUSE_PIPELINE, PAUSE_BODY, PAUSE_UPSTREAM, PAUSE_UPGRADE, PAUSE_PLUGIN = 1, 2, 4, 8, 16
# What a client the mesh's traffic permissions deny gets for each request.
_FORBIDDEN = (403, FORBIDDEN_REASON, FORBIDDEN_MESSAGE)


class ClientPipe(Protocol):
    """What a connection becomes after a 101: a ``Tunnel`` or a plugin's raw connection."""

    def from_client(self, data: bytes) -> None: ...
    def client_write_paused(self, paused: bool) -> None: ...
    def client_closed(self) -> None: ...


class ConnectionBase(asyncio.Protocol):
    """A client connection's state, and what it does besides parsing and answering."""

    __slots__ = (
        "batch",
        "broken",
        "client_ip",
        "client_ip_bytes",
        "clock",
        "closed",
        "current",
        "deadline",
        "denied",
        "engine",
        "fatal",
        "fwd_static",
        "guard",
        "half_closed",
        "head_bytes",
        "listener_name",
        "parser",
        "parsing",
        "pause_mask",
        "peer_ids",
        "phase",
        "port_bytes",
        "scheme_bytes",
        "settings",
        "sni",
        "tls",
        "transport",
        "trusted",
        "tunnel",
        "upgrade_buffer",
        "waiting",
        "write_paused",
    )

    def __init__(
        self,
        engine: HttpEngine,
        *,
        tls: bool,
        listener_name: str = "",
        guard: InboundGuard | None = None,
    ) -> None:
        self.engine = engine
        self.batch = engine.batch
        self.guard = guard  # mesh listeners: who may use it; None: anybody, nothing checked
        self.peer_ids: tuple[str, ...] = ()  # URI SANs of the client's verified certificate
        self.denied = False  # every request gets 403 (decided once, in connection_made)
        self.listener_name = listener_name  # picks the router of listener-scoped routes
        self.settings = engine.settings
        self.clock = engine.sweeper
        self.fwd_static = b""
        self.tls = tls
        self.scheme_bytes = b"https" if tls else b"http"
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self.parser = httptools.HttpRequestParser(self)
        self.client_ip = ""
        self.client_ip_bytes = b""
        self.port_bytes = b""
        self.trusted = False
        self.sni: str | None = None
        self.parsing: ProxyRequest | None = None  # receiving parser callbacks
        self.current: ProxyRequest | None = None  # being answered
        self.waiting: deque[ProxyRequest] = deque()  # parsed, behind ``current``
        self.fatal: tuple[int, str, str] | None = None  # error to send once ``current`` is done
        self.tunnel: ClientPipe | None = None
        self.upgrade_buffer: list[bytes] | None = None  # client bytes after an upgrade request
        self.pause_mask = 0
        self.write_paused = False
        self.phase = PH_HEAD
        self.deadline = 0.0
        self.head_bytes = 0
        self.broken = False  # parsing stopped for good
        self.half_closed = False
        self.closed = False

    # ------------------------------------------------------------------ connection events

    def on_deadline(self, now: float) -> None:
        if not 0 < self.deadline <= now or self.closed:
            return
        self.deadline = 0.0
        if self.write_paused or self.phase == PH_WAIT:
            self.transport.abort()  # the client stopped reading its response
        elif self.phase == PH_IDLE:
            self.transport.close()
        elif self.phase == PH_HEAD:
            self._protocol_error(408, "client-header-timeout", "Request timeout")
        else:
            self._protocol_error(408, "client-body-timeout", "Request timeout")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.broken = True
        self.engine.clients.discard(self)
        self.engine.sweeper.discard(self)
        if self.tunnel is not None:
            self.tunnel.client_closed()
            return
        current = self.current
        if current is not None and current.ctx is not None:
            current.ctx.client_gone()  # a plugin streaming to this client stops now
        if current is not None and not current.responded:
            exchange = current.exchange
            if exchange is not None:
                exchange.client_gone()
            current.responded = True
            self._log(current, exchange, 499, 0 if exchange is None else exchange.bytes_sent,
                      "client-closed")  # fmt: skip

    def eof_received(self) -> bool | None:
        if self.tunnel is not None:
            return None
        current = self.current
        if current is not None:
            self.half_closed = True  # finish the request in flight, then close
            if current.exchange is None and current.ctx is not None:
                current.ctx.client_gone()  # a plugin's stream to a client that left
            return True
        return None

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.client_write_paused(True)
            return
        self.deadline = self.clock.now + self.settings.send_timeout
        current = self.current
        if current is not None and current.exchange is not None:
            current.exchange.client_write_paused(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.client_write_paused(False)
            return
        self._set_phase(self.phase)
        current = self.current
        if current is not None and current.exchange is not None:
            current.exchange.client_write_paused(False)
        elif current is not None and current.ctx is not None:
            current.ctx.client_resumed()  # a plugin streaming its own response

    def is_https(self, req: ProxyRequest) -> bool:
        if self.tls:
            return True
        proto = req.fwd_proto
        return self.trusted and proto is not None and proto.strip().lower() == b"https"

    def close_if_idle(self) -> None:
        """Close the connection if it is between requests (used by drain)."""
        if self.current is None and self.parsing is None and self.tunnel is None:
            self.broken = True
            self.transport.close()

    def _must_close(self, req: ProxyRequest) -> bool:
        """Whether the answer to ``req`` ends the connection (see ``unread_body_closes`` for
        one given before the request body is all in)."""
        return (
            not req.keep_alive
            or self.engine.state.draining
            or self.half_closed
            or self.upgrade_buffer is not None
            or unread_body_closes(req)
        )

    def _set_phase(self, phase: int) -> None:
        self.phase = phase
        if self.write_paused:
            return
        settings = self.settings
        if phase == PH_IDLE:
            self.deadline = self.clock.now + settings.keepalive_timeout
        elif phase == PH_HEAD:
            start = self.parsing.started_at if self.parsing is not None else self.clock.now
            self.deadline = start + settings.client_header_timeout
        elif phase == PH_BODY:
            self.deadline = self.clock.now + settings.client_body_timeout
        else:
            self.deadline = 0.0

    def _protocol_error(self, status: int, reason: str, message: str) -> None:
        """The input cannot be parsed further: answer ``status`` (when possible) and close."""
        self.broken = True
        failing = self.parsing
        self.parsing = None
        current = self.current
        if current is not None and not current.responded and current is not failing:
            self.fatal = (status, reason, message)  # answered once ``current`` is done
            self._pause(PAUSE_PIPELINE)
            return
        if failing is not None and failing.responded:
            self.transport.close()  # answered before its body, which then broke or stalled
            return
        if failing is not None and failing is current:
            exchange = failing.exchange
            if exchange is not None and (exchange.status or exchange.done):
                if not exchange.done:
                    exchange.client_gone()
                failing.responded = True
                self._log(failing, exchange, exchange.status, exchange.bytes_sent, reason)
                self.transport.abort()
                return
            if exchange is not None:
                exchange.client_gone()
        self._send_fatal(status, reason, message, failing)

    def _send_fatal(
        self, status: int, reason: str, message: str, req: ProxyRequest | None = None
    ) -> None:
        data = errors.error_response(
            status, message, reason, close=True, server_tokens=self.settings.server_tokens
        )
        self.transport.write(data)
        if req is not None:
            req.responded = True
            self._log(req, req.exchange, status, len(data), reason)
        self.broken = True
        self.transport.close()

    def _pause(self, reason: int) -> None:
        if not self.pause_mask and not self.closed:
            self.transport.pause_reading()
        self.pause_mask |= reason

    def _resume(self, reason: int) -> None:
        if self.pause_mask & reason:
            self.pause_mask &= ~reason
            if not self.pause_mask and not self.closed:
                self.transport.resume_reading()

    def pause_for_plugin(self, paused: bool) -> None:
        """While a plugin waits, reading stops unless the whole request is in: then only a
        pipelined request (paused as usual) or the client's FIN/reset can come, and noticing
        those is what lets a waiting plugin (a long-poll) stop when its client leaves."""
        current = self.current
        if paused and not (current is not None and current.message_complete):
            self._pause(PAUSE_PLUGIN)
        elif not paused:
            self._resume(PAUSE_PLUGIN)

    def pause_for_upstream(self, paused: bool) -> None:
        if paused:
            self._pause(PAUSE_UPSTREAM)
        else:
            self._resume(PAUSE_UPSTREAM)

    def body_buffer_drained(self) -> None:
        self._resume(PAUSE_BODY)

    def _log(
        self,
        req: ProxyRequest,
        exchange: Exchange | None,
        status: int,
        bytes_sent: int,
        reason: str,
    ) -> None:
        ctx = req.ctx
        if ctx is not None:
            ctx.finished(status, bytes_sent, exchange)  # schedules the plugins' log phase
        sink = self.engine.access_sink()
        if sink is None:
            return
        record = build_record(
            self.client_ip, req, exchange, status, bytes_sent, reason, self.clock.now
        )
        try:
            sink(record)
        except Exception:
            _log.exception("access log sink failed")

    def start_stream(self, req: ProxyRequest, status: int, lines: list[bytes]) -> tuple[bool, bool]:
        """Send the head of a response a plugin streams; returns (chunked, close after)."""
        chunked = not req.http10
        close = req.http10 or self._must_close(req)
        head = [status_line(status, errors.reason_phrase(status)), *lines]
        if chunked:
            head.append(b"Transfer-Encoding: chunked\r\n")
        if self.settings.server_tokens:
            head.append(SERVER_LINE)
        if close:
            head.append(b"Connection: close\r\n")
        head.append(errors.date_line())
        head.append(CRLF)
        self.transport.write(b"".join(head))
        self._resume(PAUSE_PLUGIN)  # notice a client that leaves while the stream runs
        return chunked, close

    def _hand_over(self, pipe: ClientPipe) -> None:
        """After a 101: the connection's bytes go to ``pipe`` from now on (no more HTTP)."""
        self.tunnel = pipe
        self.current = None
        self.deadline = 0.0
        self.engine.sweeper.discard(self)
        pending, self.upgrade_buffer = self.upgrade_buffer or [], None
        for data in pending:
            pipe.from_client(data)
        self.pause_mask = 0
        self.transport.resume_reading()
        if self.write_paused:
            pipe.client_write_paused(True)
