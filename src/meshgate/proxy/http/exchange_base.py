"""``ExchangeBase``: an exchange's state and its endings other than a complete response —
failed connects, lost or unparsable upstreams, timeouts, a client that left, plugins that
answer instead — plus flow control between the two connections.

``exchange.Exchange`` adds the main path (pick, connect, send, relay); what it provides is
declared here so that each side type-checks on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from meshgate.proxy.filters.flow import MSG_PLUGIN_ERROR
from meshgate.proxy.http import errors
from meshgate.proxy.http.heads import CRLF, VIA_LINE, status_line

if TYPE_CHECKING:
    from meshgate.proxy.balancer import Balancer, Outcome, Target
    from meshgate.proxy.compiled import CompiledRoute, CompiledService
    from meshgate.proxy.filters.flow import ProxyContext
    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.http.exchange_policy import PolicyRun
    from meshgate.proxy.http.pool import PoolKey
    from meshgate.proxy.http.request import ProxyRequest
    from meshgate.proxy.http.server import HttpProxyProtocol
    from meshgate.proxy.http.upstream import UpstreamProtocol

# Replayable when nothing but the head was sent (Go's net/http rule, RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
MODE_NONE, MODE_LENGTH, MODE_CHUNKED, MODE_CLOSE = 0, 1, 2, 3


class ExchangeBase:
    """The state of one exchange and every way it ends other than a relayed response."""

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
        "queued",
        "reason",
        "req",
        "request_sent",
        "retry_safe",
        "reused",
        "route",
        "run",
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
        self.tried: tuple[Target, ...] = ()  # targets given up on, oldest first
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
        self.run: PolicyRun | None = None  # the service's mesh policy at work, if it has one
        self.queued: PoolKey | None = None  # waiting in this key's connect queue (pool_waiters)

    # ------------------------------------------------------------------ provided by Exchange

    def pick(self) -> None:
        raise NotImplementedError

    def _use(self, target: Target, *, fresh: bool) -> None:
        raise NotImplementedError

    def on_response_complete(self) -> None:
        raise NotImplementedError

    def flush_head(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ retries

    def end_target(self) -> None:
        target = self.target
        if target is not None:
            self.balancer.on_request_end(target, self.client.clock.now - self.target_started)

    def _connect_failed(self, target: Target, outcome: Outcome, reason: str) -> None:
        if target is not self.target:
            return
        self.balancer.report(target, outcome, None)
        self.end_target()
        self.target = None
        self.tried += (target,)
        if self.done:
            return
        self._retry_or_fail(outcome, reason)

    def _retry_or_fail(self, outcome: Outcome, reason: str, kind: str = "connect") -> None:
        run = self.run
        if run is not None and run.plan is not None:
            if run.retry(cast("Exchange", self), kind):
                return
        elif self.attempts < self.service.retries:
            self.attempts += 1
            self.pick()
            return
        if outcome == "timeout":
            self.fail(504, reason, errors.MSG_TIMEOUT)
        else:
            self.fail(502, reason, errors.MSG_BAD_GATEWAY)

    def leave_queue(self) -> None:
        """Stop waiting for a connection of the key's queue, if waiting."""
        key = self.queued
        if key is not None:
            self.queued = None
            self.client.engine.pools.queues.leave(key, cast("Exchange", self))

    def wait_limit(self) -> float:
        """How long it may wait in a connect queue: its connect timeout."""
        return self.service.connect_timeout

    def pool_failed(self, outcome: Outcome, reason: str) -> None:
        """A connect of its queue failed: as if its own had."""
        self.queued = None
        target = self.target
        if target is not None:
            self._connect_failed(target, outcome, reason)

    def reset_for_retry(self) -> None:
        """Forget the failed try's connection state before the next one."""
        self.streaming = False
        self.request_sent = False
        self.reused = False
        self.stale_retried = False
        self.status = 0
        self.mode = MODE_NONE
        self.until_close = False
        self.pending_head = None

    # ------------------------------------------------------------------ failures

    def drop_upstream(self) -> None:
        """A plugin answers instead of the upstream: drop its connection and response."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        self.pending_head = None
        self.end_target()
        self.done = True
        if self.run is not None:
            self.run.finish(cast("Exchange", self))

    def plugin_body_failed(self) -> None:
        """A body-phase plugin raised: 500 if nothing was sent yet, else cut the client."""
        sent = self.pending_head is None
        self.drop_upstream()
        if sent:
            self.reason = "plugin-error"
            self.client.exchange_aborted(cast("Exchange", self))
        else:
            self.status = 500
            self.reason = "plugin-error"
            self.client.exchange_failed(
                cast("Exchange", self), 500, "plugin-error", MSG_PLUGIN_ERROR
            )

    def fail(self, status: int, reason: str, message: str) -> None:
        self.done = True
        self.leave_queue()
        if self.run is not None:
            self.run.finish(cast("Exchange", self))
        self.status = status
        self.reason = reason
        self.client.exchange_failed(cast("Exchange", self), status, reason, message)

    def abort_client(self, reason: str) -> None:
        """The response head is out: nothing to do but cut the client connection."""
        self.done = True
        if self.run is not None:
            self.run.finish(cast("Exchange", self))
        self.reason = reason
        self.client.exchange_aborted(cast("Exchange", self))

    def upstream_lost(self, exc: Exception | None) -> None:
        """The connection closed under us (``conn.exchange`` is already cleared)."""
        self.conn = None
        if self.done:
            return
        if self.status:
            if self.until_close and exc is None:
                self.on_response_complete()
            else:
                self.end_target()
                self.abort_client("upstream-closed-mid-response")
            return
        target = self.target
        if self.reused and self.retry_safe and not self.stale_retried and target is not None:
            self.stale_retried = True  # the keep-alive race: same target, fresh connection
            self.end_target()
            self._use(target, fresh=True)
            return
        if target is not None:
            self.balancer.report(target, "tcp_error", None)
            self.end_target()
            self.tried += (target,)
            self.target = None
        if self.retry_safe or (self.run is not None and self.run.plan is not None):
            self._retry_or_fail("tcp_error", "upstream-bad-response", "reset")
        else:
            self.fail(502, "upstream-bad-response", errors.MSG_BAD_GATEWAY)

    def upstream_failed(self, reason: str) -> None:
        """The upstream sent something unparsable (or a 101 nobody asked for)."""
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        if self.done:
            return
        self.end_target()
        if self.status and self.pending_head is None:
            self.abort_client(reason)
        else:
            self.pending_head = None
            self.fail(502, reason, errors.MSG_BAD_GATEWAY)

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
        self.end_target()
        if self.status:
            if self.pending_head is not None:
                self.flush_head()
            self.abort_client(reason)
            return
        if target is not None:
            self.tried += (target,)
            self.target = None
        if self.retry_safe or (self.run is not None and self.run.plan is not None):
            self._retry_or_fail("timeout", reason, "timeout")
        else:
            self.fail(504, reason, errors.MSG_TIMEOUT)

    def client_gone(self) -> None:
        """The client connection closed before the response was complete."""
        if self.done:
            return
        self.done = True
        self.leave_queue()
        if self.run is not None:
            self.run.finish(cast("Exchange", self))
        conn = self.conn
        self.conn = None
        if conn is not None:
            conn.abort()
        self.end_target()

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
        self.end_target()
        self.done = True
        if self.run is not None:
            self.run.finish(cast("Exchange", self))
        self.client.start_tunnel(cast("Exchange", self), tunnel)
