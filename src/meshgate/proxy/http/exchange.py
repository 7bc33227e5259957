"""``Exchange``: one proxied request — pick a target, get a connection, send, relay, retry.

Driven entirely by callbacks (client parser, upstream parser, sweeper); only a fresh
connect runs as a task.  Connect failures are retried on other targets up to
``service.retries``; a reused keep-alive connection that dies before answering a
replayable request is retried once on a fresh connection (the keep-alive race).
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from meshgate import tasks
from meshgate.proxy.filters.flow import MSG_PLUGIN_ERROR, filter_body, upstream_head
from meshgate.proxy.http import errors
from meshgate.proxy.http.clock import monotonic
from meshgate.proxy.http.heads import (
    CRLF,
    VIA_LINE,
    is_websocket,
    status_line,
)
from meshgate.proxy.http.pool import PoolKey

if TYPE_CHECKING:
    from meshgate.proxy.balancer import Balancer, Outcome, Target
    from meshgate.proxy.compiled import CompiledRoute, CompiledService
    from meshgate.proxy.filters.flow import ProxyContext
    from meshgate.proxy.http.heads import ResponseFacts
    from meshgate.proxy.http.request import ProxyRequest
    from meshgate.proxy.http.server import HttpProxyProtocol
    from meshgate.proxy.http.upstream import UpstreamProtocol

# Replayable when nothing but the head was sent (Go's net/http rule, RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
MODE_NONE, MODE_LENGTH, MODE_CHUNKED, MODE_CLOSE = 0, 1, 2, 3
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TE_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_CONN_CLOSE = b"Connection: close\r\n"
_CONN_KEEP_ALIVE = b"Connection: keep-alive\r\n"


def buffer_body(req: ProxyRequest, data: bytes) -> None:
    """Keep a body piece (framed for upstream) until a connection is attached."""
    if req.chunked:
        req.body_buffer.append(b"%x\r\n" % len(data) + data + CRLF)
    else:
        req.body_buffer.append(data)
    req.body_buffered += len(data)


class Exchange:
    """The upstream side of one request."""

    __slots__ = (
        "attempts",
        "balancer",
        "body_ctx",
        "bytes_sent",
        "client",
        "close_after",
        "conn",
        "continue_sent",
        "done",
        "head",
        "mode",
        "pending_head",
        "reason",
        "req",
        "request_sent",
        "retry_safe",
        "reused",
        "route",
        "service",
        "stale_retried",
        "status",
        "streaming",
        "t_head",
        "t_sent",
        "target",
        "target_started",
        "tried",
        "until_close",
        "upstream_keep_alive",
    )

    def __init__(
        self,
        client: HttpProxyProtocol,
        req: ProxyRequest,
        route: CompiledRoute,
        service: CompiledService,
        head: bytes,
    ) -> None:
        self.client = client
        self.req = req
        self.route = route
        self.service = service
        self.balancer: Balancer = service.balancer
        self.head = head
        self.target: Target | None = None
        self.target_started = 0.0
        self.tried: list[Target] = []
        self.attempts = 0
        self.conn: UpstreamProtocol | None = None
        self.reused = False
        self.stale_retried = False
        self.retry_safe = req.method in IDEMPOTENT and not req.has_body
        self.streaming = False  # a connection is attached: body pieces go straight upstream
        self.request_sent = False
        self.continue_sent = False
        self.status = 0
        self.mode = MODE_NONE
        self.until_close = False
        self.upstream_keep_alive = False
        self.pending_head: bytes | None = None
        self.bytes_sent = 0
        self.close_after = False
        self.reason = ""
        self.done = False
        self.t_sent = 0.0
        self.t_head = 0.0
        self.body_ctx: ProxyContext | None = None  # set when plugins filter the response body

    # ------------------------------------------------------------------ target and connection

    def start(self) -> None:
        """Pick a target and send the request (or answer 503); also each retry's step."""
        req = self.req
        target = self.balancer.pick(req, self.tried) if self.tried else self.balancer.pick(req)
        if target is None and self.tried:
            target = self.balancer.pick(req)  # every target was tried: any will do
        if target is None:
            self._fail(503, "no-healthy-target", errors.MSG_NO_PEER)
            return
        self._use(target, fresh=False)

    _pick = start

    def _use(self, target: Target, *, fresh: bool) -> None:
        self.target = target
        self.balancer.on_request_start(target)
        self.target_started = self.client.clock.now
        svc = self.service
        context = svc.ssl_context
        key: PoolKey = (
            target.address,
            target.port,
            0 if context is None else id(context),
            svc.server_hostname,
        )  # pool_key(), inlined
        pools = self.client.engine.pools
        conn = None if fresh else pools.acquire(key)
        if conn is not None:
            self._attach(conn, reused=True)
        else:
            tasks.spawn(self._connect(key, target), name=f"upstream-connect {key[0]}:{key[1]}")

    async def _connect(self, key: PoolKey, target: Target) -> None:
        svc = self.service
        pools = self.client.engine.pools
        try:
            conn = await pools.connect(
                key, svc.connect_timeout, svc.ssl_context, svc.server_hostname
            )
        except TimeoutError:
            self._connect_failed(target, "timeout", "upstream-connect-timeout")
            return
        except ssl.SSLError:
            self._connect_failed(target, "tcp_error", "upstream-tls-error")
            return
        except ConnectionRefusedError:
            self._connect_failed(target, "tcp_error", "upstream-connect-refused")
            return
        except OSError:
            self._connect_failed(target, "tcp_error", "upstream-connect-error")
            return
        if self.done or target is not self.target:
            pools.release(conn, True)
            return
        self.client.clock.now = monotonic()
        self._attach(conn, reused=False)

    def _end_target(self) -> None:
        target = self.target
        if target is not None:
            self.balancer.on_request_end(target, self.client.clock.now - self.target_started)

    def _connect_failed(self, target: Target, outcome: Outcome, reason: str) -> None:
        if target is not self.target:
            return
        self.balancer.report(target, outcome, None)
        self._end_target()
        self.target = None
        self.tried.append(target)
        if self.done:
            return
        self._retry_or_fail(outcome, reason)

    def _retry_or_fail(self, outcome: Outcome, reason: str) -> None:
        if self.attempts < self.service.retries:
            self.attempts += 1
            self._pick()
        elif outcome == "timeout":
            self._fail(504, reason, errors.MSG_TIMEOUT)
        else:
            self._fail(502, reason, errors.MSG_BAD_GATEWAY)

    def _attach(self, conn: UpstreamProtocol, *, reused: bool) -> None:
        req = self.req
        self.conn = conn
        self.reused = reused
        conn.exchange = self
        conn.requests += 1
        conn.head_only = req.method == b"HEAD"
        conn.upgraded = False
        if req.expect_continue and not req.message_complete and not self.continue_sent:
            self.continue_sent = True
            self.client.transport.write(CONTINUE)
        if req.body_buffer:
            conn.transport.writelines([self.head, *req.body_buffer])
            req.body_buffer = []
            req.body_buffered = 0
            self.client.body_buffer_drained()
        else:
            conn.transport.write(self.head)
        self.streaming = True
        self.t_sent = self.client.clock.now
        if req.message_complete:
            self._request_sent()

    def _request_sent(self) -> None:
        self.request_sent = True
        conn = self.conn
        if conn is not None:
            conn.read_timeout = self.service.read_timeout
            if not self.client.write_paused:
                conn.deadline = self.client.clock.now + conn.read_timeout

    # ------------------------------------------------------------------ request body

    def send_body(self, data: bytes) -> None:
        conn = self.conn
        if not self.streaming or conn is None:
            buffer_body(self.req, data)
            return
        if self.req.chunked:
            conn.transport.writelines([b"%x\r\n" % len(data), data, CRLF])
        else:
            conn.transport.write(data)

    def body_done(self) -> None:
        if not self.streaming or self.conn is None:
            if self.req.chunked:
                self.req.body_buffer.append(LAST_CHUNK)
            return
        conn = self.conn
        if self.req.chunked:
            conn.transport.write(LAST_CHUNK)
        self.request_sent = True  # _request_sent(), inlined
        conn.read_timeout = read_timeout = self.service.read_timeout
        client = self.client
        if not client.write_paused:
            conn.deadline = client.clock.now + read_timeout

    # ------------------------------------------------------------------ response

    def on_response_head(
        self, status: int, reason: bytes, facts: ResponseFacts, keep_alive: bool
    ) -> None:
        self.t_head = self.client.clock.now
        self.status = status
        self.upstream_keep_alive = keep_alive
        if self.target is not None:
            self.balancer.report(self.target, "http", status)
        req = self.req
        client = self.client
        if status == 101:
            if is_websocket(req.upgrade) and facts.upgrade is not None:
                self._start_tunnel(reason, facts.kept, facts.upgrade)
            else:
                self.upstream_failed("upstream-bad-response")
            return
        ctx = req.ctx
        if ctx is not None and not upstream_head(self, ctx, status, facts):
            return  # a plugin answered instead (exit or error)
        close_after = (
            not req.keep_alive
            or client.engine.state.draining
            or (req.has_body and not req.message_complete)
        )
        if req.method == b"HEAD" or status == 204 or status == 304:
            mode = MODE_NONE
        elif facts.content_length >= 0 and not facts.chunked and self.body_ctx is None:
            mode = MODE_LENGTH
        elif req.http10:
            mode = MODE_CLOSE
            close_after = True
        else:
            mode = MODE_CHUNKED
        self.until_close = mode != MODE_NONE and not facts.chunked and facts.content_length < 0
        parts = [status_line(status, reason or errors.reason_phrase(status)), *facts.kept]
        if mode == MODE_CHUNKED:
            parts.append(_TE_CHUNKED)
        if req.response_cookies:
            parts.extend(req.response_cookies)
        if client.engine.settings.server_tokens:
            parts.append(VIA_LINE)
        if close_after:
            parts.append(_CONN_CLOSE)
        elif req.http10:
            parts.append(_CONN_KEEP_ALIVE)
        parts.append(CRLF)
        self.mode = mode
        self.close_after = close_after
        self.pending_head = b"".join(parts)

    def flush_head(self) -> None:
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            self.bytes_sent += len(head)
            self.client.transport.write(head)

    def on_response_body(self, data: bytes) -> None:
        if self.done:
            return
        if self.body_ctx is not None:
            data = filter_body(self, self.body_ctx, data, False)
            if not data:
                return
        transport = self.client.transport
        head = self.pending_head
        size = len(data)
        if self.mode == MODE_CHUNKED:
            prefix = b"%x\r\n" % size
            size += len(prefix) + 2
            if head is not None:
                transport.writelines([head, prefix, data, CRLF])
            else:
                transport.writelines([prefix, data, CRLF])
        elif head is not None:
            transport.writelines([head, data])
        else:
            transport.write(data)
        if head is not None:
            self.pending_head = None
            size += len(head)
        self.bytes_sent += size

    def on_response_complete(self) -> None:
        if self.done:
            return
        if self.body_ctx is not None and self.mode != MODE_NONE:
            rest = filter_body(self, self.body_ctx, b"", True)
            if self.done:
                return
            if rest:
                self.body_ctx = None
                self.on_response_body(rest)
        tail = LAST_CHUNK if self.mode == MODE_CHUNKED else b""
        head = self.pending_head
        if head is not None:
            self.pending_head = None
            tail = head + tail
        if tail:
            self.bytes_sent += len(tail)
            self.client.transport.write(tail)
        conn = self.conn
        client = self.client
        self.conn = None
        if conn is not None:
            client.engine.pools.release(
                conn, self.upstream_keep_alive and self.request_sent and not self.until_close
            )
        target = self.target
        if target is not None:  # _end_target(), inlined
            self.balancer.on_request_end(target, client.clock.now - self.target_started)
        self.done = True
        client.exchange_done(self)

    # ------------------------------------------------------------------ failures

    def drop_upstream(self) -> None:
        """A plugin answers instead of the upstream: drop its connection and response."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        self.pending_head = None
        self._end_target()
        self.done = True

    def plugin_body_failed(self) -> None:
        """A body-phase plugin raised: 500 if nothing was sent yet, else cut the client."""
        sent = self.pending_head is None
        self.drop_upstream()
        if sent:
            self.reason = "plugin-error"
            self.client.exchange_aborted(self)
        else:
            self.status = 500
            self.reason = "plugin-error"
            self.client.exchange_failed(self, 500, "plugin-error", MSG_PLUGIN_ERROR)

    def _fail(self, status: int, reason: str, message: str) -> None:
        self.done = True
        self.status = status
        self.reason = reason
        self.client.exchange_failed(self, status, reason, message)

    def _abort_client(self, reason: str) -> None:
        """The response head is out: nothing to do but cut the client connection."""
        self.done = True
        self.reason = reason
        self.client.exchange_aborted(self)

    def upstream_lost(self, exc: Exception | None) -> None:
        """The connection closed under us (``conn.exchange`` is already cleared)."""
        self.conn = None
        if self.done:
            return
        if self.status:
            if self.until_close and exc is None:
                self.on_response_complete()
            else:
                self._end_target()
                self._abort_client("upstream-closed-mid-response")
            return
        target = self.target
        if self.reused and self.retry_safe and not self.stale_retried and target is not None:
            self.stale_retried = True  # the keep-alive race: same target, fresh connection
            self._end_target()
            self._use(target, fresh=True)
            return
        if target is not None:
            self.balancer.report(target, "tcp_error", None)
            self._end_target()
            self.tried.append(target)
            self.target = None
        if self.retry_safe:
            self._retry_or_fail("tcp_error", "upstream-bad-response")
        else:
            self._fail(502, "upstream-bad-response", errors.MSG_BAD_GATEWAY)

    def upstream_failed(self, reason: str) -> None:
        """The upstream sent something unparsable (or a 101 nobody asked for)."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        if self.done:
            return
        self._end_target()
        if self.status and self.pending_head is None:
            self._abort_client(reason)
        else:
            self.pending_head = None
            self._fail(502, reason, errors.MSG_BAD_GATEWAY)

    def upstream_timeout(self) -> None:
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        if self.done:
            return
        reason = "upstream-read-timeout" if self.request_sent else "upstream-write-timeout"
        target = self.target
        if target is not None:
            self.balancer.report(target, "timeout", None)
        self._end_target()
        if self.status:
            if self.pending_head is not None:
                self.flush_head()
            self._abort_client(reason)
            return
        if target is not None:
            self.tried.append(target)
            self.target = None
        if self.retry_safe:
            self._retry_or_fail("timeout", reason)
        else:
            self._fail(504, reason, errors.MSG_TIMEOUT)

    def client_gone(self) -> None:
        """The client connection closed before the response was complete."""
        if self.done:
            return
        self.done = True
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        self._end_target()

    # ------------------------------------------------------------------ flow control

    def client_write_paused(self, paused: bool) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        if paused:
            conn.transport.pause_reading()
            conn.deadline = 0.0
        else:
            conn.transport.resume_reading()
            if conn.read_timeout:
                conn.deadline = self.client.clock.now + conn.read_timeout

    def upstream_write_paused(self, paused: bool) -> None:
        conn = self.conn
        if conn is None:
            return
        if paused:
            conn.deadline = self.client.clock.now + self.service.write_timeout
            self.client.pause_for_upstream(True)
        else:
            conn.deadline = self.client.clock.now + conn.read_timeout if conn.read_timeout else 0.0
            self.client.pause_for_upstream(False)

    # ------------------------------------------------------------------ websocket

    def _start_tunnel(self, reason: bytes, kept: list[bytes], upgrade: bytes) -> None:
        from meshgate.proxy.http.websocket import Tunnel

        conn = self.conn
        assert conn is not None
        parts = [status_line(101, reason or b"Switching Protocols"), *kept]
        parts.append(b"Connection: upgrade\r\nUpgrade: " + upgrade + CRLF)
        if self.client.engine.settings.server_tokens:
            parts.append(VIA_LINE)
        parts.append(CRLF)
        head = b"".join(parts)
        self.client.transport.write(head)
        self.bytes_sent += len(head)
        conn.upgraded = True
        conn.read_timeout = 0.0
        conn.deadline = 0.0
        conn.exchange = None
        self.conn = None
        tunnel = Tunnel(self.client, conn)
        conn.tunnel = tunnel
        self._end_target()
        self.done = True
        self.client.start_tunnel(self, tunnel)
