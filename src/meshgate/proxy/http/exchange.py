"""``Exchange``: one proxied request — pick a target, get a connection, send, relay, retry.

Driven entirely by callbacks (client parser, upstream parser, sweeper); only a fresh
connect runs as a task.  Connect failures are retried on other targets up to
``service.retries``; a reused keep-alive connection that dies before answering a
replayable request is retried once on a fresh connection (the keep-alive race).  A service
with a mesh policy (``exchange_policy.PolicyRun``) retries by its ``RetryPolicy`` instead
and adds timeouts and cluster limits.  The ways an exchange fails are in ``exchange_base``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from meshgate import tasks
from meshgate.proxy.filters.flow import filter_body, upstream_head
from meshgate.proxy.http import errors
from meshgate.proxy.http.clock import monotonic
from meshgate.proxy.http.exchange_base import (
    IDEMPOTENT,
    MODE_CHUNKED,
    MODE_CLOSE,
    MODE_LENGTH,
    MODE_NONE,
    ExchangeBase,
)
from meshgate.proxy.http.exchange_policy import PolicyRun
from meshgate.proxy.http.heads import (
    CRLF,
    VIA_LINE,
    is_websocket,
    status_line,
)
from meshgate.proxy.http.pool import PoolKey
from meshgate.proxy.http.request import unread_body_closes

if TYPE_CHECKING:
    from meshgate.proxy.balancer import Outcome, Target
    from meshgate.proxy.http.heads import ResponseFacts
    from meshgate.proxy.http.pool import UpstreamPools
    from meshgate.proxy.http.request import ProxyRequest
    from meshgate.proxy.http.upstream import UpstreamProtocol

__all__ = ["IDEMPOTENT", "Discard", "Exchange", "buffer_body"]
LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TE_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_CONN_CLOSE = b"Connection: close\r\n"
_CONN_KEEP_ALIVE = b"Connection: keep-alive\r\n"
JOIN_MAX = 16 * 1024  # a response piece up to this size goes out joined with its head/framing


def buffer_body(req: ProxyRequest, data: bytes) -> None:
    """Keep a body piece (framed for upstream) until a connection is attached."""
    if req.chunked:
        req.body_buffer.append(b"%x\r\n" % len(data) + data + CRLF)
    else:
        req.body_buffer.append(data)
    req.body_buffered += len(data)


class Exchange(ExchangeBase):
    """The upstream side of one request."""

    __slots__ = ()

    # ------------------------------------------------------------------ target and connection

    def start(self) -> None:
        """Start proxying: apply the service's policy (if any), then pick a target."""
        policy = self.service.policy
        if policy is not None:
            self.run = run = PolicyRun(policy)
            if not run.begin(self):
                return
        self.pick()

    def pick(self) -> None:
        """Pick a target and send the request (or answer 503); also each retry's step."""
        req = self.req
        target = self.balancer.pick(req, self.tried) if self.tried else self.balancer.pick(req)
        if target is None and self.tried:
            target = self.balancer.pick(req)  # every target was tried: any will do
        if target is None:
            self.fail(503, "no-healthy-target", errors.MSG_NO_PEER)
            return
        if self.run is not None:
            self.run.arm_try(self)
        self._use(target, fresh=False)

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
        self._acquire(key, target, fresh)

    def _acquire(self, key: PoolKey, target: Target, fresh: bool) -> None:
        pools = self.client.engine.pools
        conn = None if fresh else pools.acquire(key)
        if conn is not None:
            self._attach(conn, reused=True)
            return
        if not fresh:  # wait for a free connection, see pool_waiters
            self.queued = key
            if pools.queues.join(key, self):
                return
        self.pool_connect(key)

    def pool_connect(self, key: PoolKey) -> None:
        """Open a connection (for the key's queue when queued, else for this exchange)."""
        if self.run is not None and self.run.limits is not None:
            self.run.connect(self, key)  # counted against the cluster's limits
        else:
            self.spawn_connect(key, None)

    def spawn_connect(
        self, key: PoolKey, factory: Callable[[UpstreamPools, PoolKey], UpstreamProtocol] | None
    ) -> None:
        target = self.target
        assert target is not None
        queued = self.queued is not None
        if queued:
            self.client.engine.pools.queues.connect_started(key)
        coro = self.connect(key, target, factory, queued=queued)
        tasks.spawn(coro, name=f"upstream-connect {key[0]}:{key[1]}")

    def pool_ready(self, conn: UpstreamProtocol, reused: bool) -> None:
        """The connection this exchange waited for (handed over by its key's queue)."""
        self.queued = None
        if self.done or self.target is None:  # cannot happen: leaving the queue comes first
            self.client.engine.pools.release(conn, True)
            return
        if not reused:
            self.client.clock.now = monotonic()
        self._attach(conn, reused=reused)

    def connection_available(self) -> None:
        """Queued for a connection of a full cluster: one may be free now."""
        target = self.target
        if target is None or self.done:
            return
        svc = self.service
        context = svc.ssl_context
        key = (target.address, target.port, 0 if context is None else id(context), svc.server_hostname)  # fmt: skip
        self._acquire(key, target, False)

    async def connect(
        self,
        key: PoolKey,
        target: Target,
        factory: Callable[[UpstreamPools, PoolKey], UpstreamProtocol] | None = None,
        *,
        queued: bool = False,
    ) -> None:
        """A new connection: for the key's queue when ``queued`` (its waiters share the
        outcome), else for this exchange alone."""
        svc = self.service
        pools = self.client.engine.pools
        try:
            if factory is None:
                conn = await pools.connect(
                    key, svc.connect_timeout, svc.ssl_context, svc.server_hostname
                )
            else:
                conn = await pools.connect(
                    key, svc.connect_timeout, svc.ssl_context, svc.server_hostname, factory
                )
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            if factory is not None and self.run is not None:
                self.run.connect_failed()
            outcome: Outcome = "tcp_error"
            if isinstance(exc, TimeoutError):
                outcome, reason = "timeout", "upstream-connect-timeout"
            elif isinstance(exc, ssl.SSLError):
                reason = "upstream-tls-error"
            elif isinstance(exc, ConnectionRefusedError):
                reason = "upstream-connect-refused"
            else:
                reason = "upstream-connect-error"
            if queued:
                pools.queues.connect_failed(key, outcome, reason)
            else:
                self._connect_failed(target, outcome, reason)
            return
        except asyncio.CancelledError:
            if queued:
                pools.queues.connect_abandoned(key)
            raise
        if queued:
            pools.queues.connected(conn)
            return
        if self.done or target is not self.target:
            pools.release(conn, True)
            return
        self.client.clock.now = monotonic()
        self._attach(conn, reused=False)

    def _attach(self, conn: UpstreamProtocol, *, reused: bool) -> None:
        req = self.req
        if self.run is not None:
            self.run.attach(self)
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
            if self.run is not None:
                self.run.body_complete(self)
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
        run = self.run
        if run is not None:
            plan = run.plan
            if (
                plan is not None
                and status in plan.statuses
                and run.retry_response(self, status, facts, keep_alive)
            ):
                return
            run.head_received()
        edit = self.route.response_edit
        if edit is not None:
            facts.kept = edit.apply(facts.kept)
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
            or (req.has_body and unread_body_closes(req))
        )  # a request body still due is dropped (the connection upstream is not reused)
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
        # Small pieces are joined (a copy is cheaper than a vectored write); big ones are not.
        if self.mode == MODE_CHUNKED:
            prefix = b"%x\r\n" % size
            size += len(prefix) + 2
            if size > JOIN_MAX:
                if head is not None:
                    transport.writelines([head, prefix, data, CRLF])
                else:
                    transport.writelines([prefix, data, CRLF])
            elif head is not None:
                transport.write(b"".join((head, prefix, data, CRLF)))
            else:
                transport.write(b"".join((prefix, data, CRLF)))
        elif head is not None:
            if size > JOIN_MAX:
                transport.writelines([head, data])
            else:
                transport.write(head + data)
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
        run = self.run
        if conn is not None:
            reusable = self.upstream_keep_alive and self.request_sent and not self.until_close
            if run is None:
                client.engine.pools.release(conn, reusable)
            else:
                run.release(self, conn, reusable)
        target = self.target
        if target is not None:  # end_target(), inlined
            self.balancer.on_request_end(target, client.clock.now - self.target_started)
        self.done = True
        if run is not None:
            run.finish(self)
        client.exchange_done(self)


class Discard(Exchange):
    """Owns a connection whose response is being retried: reads the rest of that response
    and throws it away, then pools the connection (closed on any trouble)."""

    __slots__ = ("idle_timeout", "pools")

    def __init__(  # no super().__init__(): only what upstream callbacks touch is set
        self, conn: UpstreamProtocol, pools: UpstreamPools, idle_timeout: float | None
    ) -> None:
        self.conn = conn
        self.pools = pools
        self.idle_timeout = idle_timeout
        self.pending_head = None
        self.done = False
        self.queued = None

    def on_response_body(self, data: bytes) -> None:
        pass

    def flush_head(self) -> None:
        pass

    def on_response_complete(self) -> None:
        conn = self.conn
        self.conn = None
        self.done = True
        if conn is not None:
            self.pools.release(conn, True, self.idle_timeout)
            limit = getattr(conn, "limit", None)
            if limit is not None:
                limit.slot_freed()

    def upstream_lost(self, exc: Exception | None) -> None:
        self.conn = None
        self.done = True

    def upstream_failed(self, reason: str) -> None:
        self._drop()

    def upstream_timeout(self) -> None:
        self._drop()

    def upstream_write_paused(self, paused: bool) -> None:
        pass

    def _drop(self) -> None:
        conn = self.conn
        self.conn = None
        self.done = True
        if conn is not None:
            conn.abort()
