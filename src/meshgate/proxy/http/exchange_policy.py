"""``PolicyRun``: a service's mesh policy applied to one ``Exchange`` — retries with backoff,
per-try and whole-request timeouts, the cluster's circuit-breaker limits.

An exchange on a service without a policy never makes one.  The run holds its timers and
what it counts against the cluster's ``LimitState``; ``finish`` (called once the exchange is
done, however it ended) cancels the one and gives back the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshgate.proxy.http import errors
from meshgate.proxy.http.policy import LimitedUpstream

if TYPE_CHECKING:
    import asyncio

    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.http.heads import ResponseFacts
    from meshgate.proxy.http.policy import ServicePolicy
    from meshgate.proxy.http.pool import PoolKey
    from meshgate.proxy.http.upstream import UpstreamProtocol

OVERFLOW = "upstream overflow"
MSG_OVERFLOW = "upstream connection limits reached"
# A retried response's body is read to its end (to keep the connection) up to this size.
DRAIN_LIMIT = 64 * 1024


class PolicyRun:
    """The policy state of one exchange (see the module docstring)."""

    __slots__ = (
        "attached",
        "backoff_timer",
        "limits",
        "pending",
        "plan",
        "policy",
        "replay",
        "request_held",
        "request_timer",
        "retry_held",
        "try_timer",
        "waiting_body",
    )

    def __init__(self, policy: ServicePolicy) -> None:
        self.policy = policy
        self.plan = policy.retry
        self.limits = policy.limits
        self.request_timer: asyncio.TimerHandle | None = None
        self.try_timer: asyncio.TimerHandle | None = None
        self.backoff_timer: asyncio.TimerHandle | None = None
        self.replay: list[bytes] | None = None  # the framed body, when it can be sent again
        self.attached = False  # some try got a connection (and the request went out)
        self.waiting_body = False  # the body is buffered whole before the first try
        self.request_held = False
        self.retry_held = False
        self.pending = False  # queued for a connection of a full cluster

    # ------------------------------------------------------------------ start and end

    def begin(self, ex: Exchange) -> bool:
        """Count the request and arm its timer; False when it must not be started now."""
        limits = self.limits
        if limits is not None:
            if limits.requests >= limits.max_requests:
                ex.fail(503, OVERFLOW, MSG_OVERFLOW)
                return False
            limits.requests += 1
            self.request_held = True
        timeout = self.policy.request_timeout
        if timeout is not None:
            loop = ex.client.engine.loop
            self.request_timer = loop.call_later(timeout, self.request_timed_out, ex)
        req = ex.req
        if (
            self.plan is not None
            and req.has_body
            and not req.message_complete
            and not req.chunked
            and 0 <= req.content_length <= ex.client.settings.high_water
        ):
            self.waiting_body = True  # retried requests need their body whole: wait for it
            return False
        return True

    def body_complete(self, ex: Exchange) -> None:
        if self.waiting_body:
            self.waiting_body = False
            ex.pick()

    def finish(self, ex: Exchange) -> None:
        """The exchange is done: stop the timers, give back what it counted."""
        for timer in (self.request_timer, self.try_timer, self.backoff_timer):
            if timer is not None:
                timer.cancel()
        self.request_timer = self.try_timer = self.backoff_timer = None
        limits = self.limits
        if limits is not None:
            if self.request_held:
                self.request_held = False
                limits.requests -= 1
            if self.retry_held:
                self.retry_held = False
                limits.retries -= 1
            if self.pending:
                self.pending = False
                try:
                    limits.pending.remove(ex)
                except ValueError:
                    pass

    def release(self, ex: Exchange, conn: UpstreamProtocol, reusable: bool) -> None:
        """Pool ``conn`` after a response (with the service's idle timeout)."""
        ex.client.engine.pools.release(conn, reusable, self.policy.idle_timeout)
        if isinstance(conn, LimitedUpstream) and conn.limit is not None:
            conn.limit.slot_freed()

    # ------------------------------------------------------------------ connections

    def connect(self, ex: Exchange, key: PoolKey) -> None:
        """A new connection for a limited cluster, or a place in its queue, or 503."""
        limits = self.limits
        assert limits is not None
        pools = ex.client.engine.pools
        if limits.connections >= limits.max_connections and not limits.evict_idle(pools):
            ex.leave_queue()  # it waits in the cluster's queue instead
            if self.pending:
                limits.pending.appendleft(ex)  # woken but beaten to it: keep its place
                return
            if len(limits.pending) >= limits.max_pending:
                ex.end_target()
                ex.target = None
                ex.fail(503, OVERFLOW, MSG_OVERFLOW)
                return
            self.pending = True
            limits.pending.append(ex)
            return
        self.pending = False
        limits.connections += 1  # reserved now; the connection owns it once made
        ex.spawn_connect(key, limits.factory)

    def connect_failed(self) -> None:
        limits = self.limits
        if limits is not None:
            limits.connections -= 1
            limits.slot_freed()

    def attach(self, ex: Exchange) -> None:
        """A try got a connection: keep the buffered body if it can be sent again."""
        if not self.attached:
            self.attached = True
            req = ex.req
            if self.plan is not None and (req.message_complete or not req.has_body):
                self.replay = list(req.body_buffer)

    # ------------------------------------------------------------------ retries

    def arm_try(self, ex: Exchange) -> None:
        plan = self.plan
        if plan is None or plan.per_try_timeout is None:
            return
        if self.try_timer is not None:
            self.try_timer.cancel()
        loop = ex.client.engine.loop
        self.try_timer = loop.call_later(plan.per_try_timeout, self.try_timed_out, ex, ex.attempts)

    def head_received(self) -> None:
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None

    def retry(self, ex: Exchange, kind: str) -> bool:
        """Schedule another try after a failed one (``kind``: connect, reset, timeout,
        status); False when the policy does not allow one."""
        plan = self.plan
        if plan is None or ex.attempts >= plan.num_retries:
            return False
        if self.attached and self.replay is None:
            return False  # the body went out as it came: it cannot be sent again
        if kind == "connect":
            if not plan.on_connect_failure:
                return False
        elif kind != "status" and not plan.on_reset:
            return False
        limits = self.limits
        if limits is not None and not self.retry_held:
            if limits.retries >= limits.max_retries:
                ex.fail(503, OVERFLOW, MSG_OVERFLOW)
                return True
            limits.retries += 1
            self.retry_held = True
        ex.attempts += 1
        self.head_received()
        loop = ex.client.engine.loop
        self.backoff_timer = loop.call_later(plan.backoff(ex.attempts), self._retry_now, ex)
        return True

    def _retry_now(self, ex: Exchange) -> None:
        self.backoff_timer = None
        if ex.done:
            return
        if self.replay is not None:
            ex.req.body_buffer = list(self.replay)
        ex.reset_for_retry()
        ex.pick()

    def retry_response(
        self, ex: Exchange, status: int, facts: ResponseFacts, keep_alive: bool
    ) -> bool:
        """A response with a retried status: drop it (its connection drains or closes) and
        try again; False when no retry is allowed (the response goes to the client)."""
        if not self.retry(ex, "status"):
            return False
        if ex.done:
            return True  # answered 503: over the retry limit
        conn = ex.conn
        ex.conn = None
        ex.status = 0
        target = ex.target
        if target is not None:
            ex.end_target()
            ex.tried += (target,)
            ex.target = None
        if conn is None:
            return True
        no_body = status in (204, 304) or ex.req.method == b"HEAD"
        size = 0 if no_body else facts.content_length
        if (
            conn.head_only
            or not keep_alive
            or (not facts.chunked and size < 0)
            or size > DRAIN_LIMIT
        ):
            conn.head_only = False  # no end-of-message for the discarded exchange
            conn.abort()
        else:
            from meshgate.proxy.http.exchange import Discard

            conn.exchange = Discard(conn, ex.client.engine.pools, self.policy.idle_timeout)
        return True

    # ------------------------------------------------------------------ timers

    def try_timed_out(self, ex: Exchange, attempt: int) -> None:
        self.try_timer = None
        if ex.done or ex.status or attempt != ex.attempts:
            return
        conn = ex.conn
        ex.conn = None
        if conn is not None:
            conn.abort()
        self._leave_queue(ex)
        target = ex.target
        if target is not None:
            ex.balancer.report(target, "timeout", None)
            ex.end_target()
            ex.tried += (target,)
            ex.target = None
        if not self.retry(ex, "timeout"):
            ex.fail(504, "upstream-per-try-timeout", errors.MSG_TIMEOUT)

    def request_timed_out(self, ex: Exchange) -> None:
        self.request_timer = None
        if ex.done:
            return
        conn = ex.conn
        ex.conn = None
        if conn is not None:
            conn.abort()
        self._leave_queue(ex)
        ex.end_target()
        ex.target = None
        if ex.status and ex.pending_head is None:
            ex.abort_client("upstream-request-timeout")  # the head is out: cut the client
        else:
            ex.pending_head = None
            ex.fail(504, "upstream-request-timeout", errors.MSG_TIMEOUT)

    def _leave_queue(self, ex: Exchange) -> None:
        ex.leave_queue()
        if self.pending and self.limits is not None:
            self.pending = False
            try:
                self.limits.pending.remove(ex)
            except ValueError:
                pass
