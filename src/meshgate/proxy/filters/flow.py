"""The engine side of plugins: run a route's chain on a live request and apply the result.

``start`` (from ``dispatch``, after routing) runs rewrite+access synchronously; the first
handler that returns an awaitable hands the rest to a done callback when it is a future (a fast
path's ``ExitFuture``), else to one task; client reading is paused meanwhile. Routes whose
chain ``needs_body`` first collect the whole request body (bounded: 413). Then the request is
forwarded with the context's changes (``request_head``), or answered: an ``Exit`` goes through
the response and body phases like an upstream answer, a plugin exception is logged with route
and plugin and answered 500. ``upstream_head`` and ``filter_body`` are the response/body phases
on the upstream's answer; ``finished`` (from the server's per-request log point) queues the log
phase: one loop callback runs the log phases of every request finished in that turn of the
loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from meshgate import tasks
from meshgate.proxy.filters.api import Exit, Phase
from meshgate.proxy.filters.context import IDENTITY_HEADERS, HttpContext
from meshgate.proxy.filters.headers import FORWARDED_NAMES, Op, apply_ops
from meshgate.proxy.filters.runner import (
    Later,
    Pending,
    advance,
    collect_rest,
    later_phases,
    run_body,
    run_log,
    run_response,
)
from meshgate.proxy.filters.streaming import (
    RawPipe,
    ResponseStream,
    break_answer,
    end_answer,
    start_stream,
    start_upgrade,
)
from meshgate.proxy.http.clock import monotonic
from meshgate.proxy.http.heads import CRLF, HeadError, build_request_head

if TYPE_CHECKING:
    from meshgate.proxy.compiled import CompiledRoute
    from meshgate.proxy.filters.chain import Chain
    from meshgate.proxy.http.exchange import Exchange
    from meshgate.proxy.http.heads import ResponseFacts
    from meshgate.proxy.http.request import ProxyRequest
    from meshgate.proxy.http.server import HttpProxyProtocol
    from meshgate.proxy.router import RouteMatch

_log = logging.getLogger("meshgate.plugins")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
MSG_PLUGIN_ERROR = "An unexpected error occurred"
_ANSWER_PHASES = frozenset({Phase.REWRITE, Phase.ACCESS})


class ProxyContext(HttpContext):
    """``HttpContext`` plus what the engine needs to carry the request on."""

    later: Later | None = None
    answer: ResponseStream | RawPipe | None = None  # a plugin streams or took the connection
    waiting: asyncio.Future[Any] | None = None  # what the plugin phase awaits
    resume_at = 0  # the chain step after the one that waits

    def __init__(
        self,
        client: HttpProxyProtocol,
        req: ProxyRequest,
        croute: CompiledRoute,
        match: RouteMatch[CompiledRoute],
        chain: Chain,
    ) -> None:
        # HttpContext.__init__ inlined (per request); port is read when asked for
        self.req = req
        self.chain = chain
        self.phase = Phase.ACCESS
        self.shared = {}
        self._scheme = "https" if client.tls else "http"
        self._route = croute.route
        service = croute.service
        self._service = service.service if service is not None else None
        self.client = client
        self.croute = croute
        self.match = match

    @property
    def port(self) -> int:
        return int(self.client.port_bytes or 0)

    def later_phases(self) -> Later:
        later = self.later
        if later is None:
            assert self.chain is not None
            later = self.later = later_phases(self, self.chain)
        return later

    def gone(self) -> bool:
        return self.req.responded or self.client.closed

    def waited(self, future: asyncio.Future[Any]) -> None:
        """Done callback of the future the plugin phase waits on (``_wait``)."""
        self.waiting = None
        if future.cancelled():
            _client_left(self)
            return
        pending = _step(self, self.resume_at, future.exception())
        if pending is not None:
            _wait(self, pending)

    # ------------------------------------------------------------------ plugin-made answers

    def stream(self, status: int, headers: Mapping[str, str] | None = None) -> ResponseStream:
        """Send the head now; the plugin writes the body over time (see ``streaming``)."""
        self._check(_ANSWER_PHASES, "stream")
        return start_stream(self, status, headers)

    def upgrade(self, headers: Mapping[str, str] | None = None) -> RawPipe:
        """Answer 101 and hand the raw client connection to the plugin."""
        self._check(_ANSWER_PHASES, "upgrade")
        return start_upgrade(self, headers)

    def client_gone(self) -> None:
        """The client connection was lost or the client sent its FIN (server
        ``connection_lost``/``eof_received``) while a plugin streams or waits (a long-poll):
        stop the stream, or cancel the wait, now — as nginx ends a request whose client left."""
        answer = self.answer
        if isinstance(answer, ResponseStream):
            answer.client_left()
        elif answer is None and self.waiting is not None and not self.waiting.done():
            self.waiting.cancel()

    def client_resumed(self) -> None:
        """The client's write buffer drained (server ``resume_writing``)."""
        answer = self.answer
        if isinstance(answer, ResponseStream):
            answer.resumed()

    # ------------------------------------------------------------------ request body

    def feed_body(self, data: bytes) -> None:
        """A piece of a body being collected (server ``on_body``)."""
        self.body_size += len(data)
        if self.body_size > self.body_limit:
            raise HeadError(413, "request-too-large", "Request size limit exceeded")
        assert self.body_pieces is not None
        self.body_pieces.append(data)

    def body_complete(self) -> None:
        """The collected body is whole (server ``on_message_complete``)."""
        if self.body_collecting:
            self.body_collecting = False
            self.upstream_body = b"".join(self.body_pieces or ())
            self.body_pieces = None
            _run(self)

    # ------------------------------------------------------------------ the end

    def finished(self, status: int, bytes_sent: int, exchange: Exchange | None) -> None:
        """The response is done (or the request was abandoned): schedule the log phase."""
        if self.t_end:
            return
        answer = self.answer
        if isinstance(answer, ResponseStream) and not answer.finished:
            answer.gone()  # the client left while the plugin was streaming
        self.t_end = monotonic()
        if not self.status:
            self.status = status
        self.bytes_sent = bytes_sent
        self.exchange = exchange
        if self.later_phases()[2]:
            queue = _thread_log_queue()
            contexts = queue.contexts
            if contexts and queue.loop is self.client.engine.loop:
                contexts.append(self)  # a drain is scheduled already
            else:
                queue.start(self.client.engine.loop, self)
        else:
            self.release()

    def release(self) -> None:
        """The request is over: drop the request's link back to this context, so that the
        two are freed by reference counting, not left to the cyclic GC (which, at thousands
        of requests a second, is a real cost).  Kept while anything may still call the
        context through the request: a plugin waiting or streaming, a body still arriving."""
        req = self.req
        if (
            req.ctx is self
            and req.message_complete
            and self.waiting is None
            and self.answer is None
            and not self.body_collecting
        ):
            req.ctx = None


class _LogQueue:
    """The requests of this thread's loop whose log phase is due: one loop callback runs
    them all, rather than one callback per request (the log phase runs after the response
    is out, never inside the callback that finished it).  One per thread (``log_queue``)."""

    __slots__ = ("contexts", "loop")

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.contexts: list[ProxyContext] = []

    def start(self, loop: asyncio.AbstractEventLoop, ctx: ProxyContext) -> None:
        """A first request to log (any left from another loop that stopped are dropped,
        as that loop's callbacks were)."""
        self.loop = loop
        self.contexts = [ctx]
        loop.call_soon(self.drain)

    def drain(self) -> None:
        contexts, self.contexts = self.contexts, []
        for ctx in contexts:
            _log_phase(ctx)


# holds this thread's ``_LogQueue`` as ``log_queue`` (not a subclass: mypyc compiles this module
# (meshgate._native), and a compiled subclass of threading.local crashes)
_thread_state = threading.local()


def _thread_log_queue() -> _LogQueue:
    queue: _LogQueue | None = getattr(_thread_state, "log_queue", None)
    if queue is None:
        queue = _thread_state.log_queue = _LogQueue()
    return queue


def _log_phase(ctx: ProxyContext) -> None:
    try:
        run_log(ctx, ctx.later_phases()[2])
    finally:
        ctx.release()


# --------------------------------------------------------------------------- rewrite + access


def start(
    client: HttpProxyProtocol,
    req: ProxyRequest,
    croute: CompiledRoute,
    match: RouteMatch[CompiledRoute],
    chain: Chain,
) -> None:
    """Run ``chain`` on ``req`` (routing is done); forwards or answers when it is through."""
    ctx = ProxyContext(client, req, croute, match, chain)
    req.ctx = ctx
    if chain.needs_body and req.has_body:
        ctx.body_limit = chain.body_limit
        pieces = _unframed(req.body_buffer, req.chunked)
        req.body_buffer = []
        req.body_buffered = 0
        size = sum(len(p) for p in pieces)
        if size > ctx.body_limit:
            client.reply(req, 413, "request-too-large", "Request size limit exceeded", close=True)
            return
        if not req.message_complete:
            ctx.body_pieces = pieces
            ctx.body_size = size
            ctx.body_collecting = True
            client.body_buffer_drained()
            if req.expect_continue:
                client.transport.write(_CONTINUE)
            return
        ctx.upstream_body = b"".join(pieces)
    _run(ctx)


def _unframed(pieces: list[bytes], chunked: bool) -> list[bytes]:
    if not chunked:
        return pieces
    return [p[p.index(CRLF) + 2 : -2] for p in pieces if p != _LAST_CHUNK]


def _run(ctx: ProxyContext) -> None:
    assert ctx.chain is not None
    try:
        pending = advance(ctx, ctx.chain, 0)
    except Exit as exit_:
        answer_exit(ctx, exit_)
        return
    except Exception:
        plugin_failed(ctx)
        return
    if pending is None:
        if ctx.answer is not None:
            end_answer(ctx)
            return
        _forward(ctx)
        return
    ctx.client.pause_for_plugin(True)
    _wait(ctx, pending)


def _wait(ctx: ProxyContext, pending: Pending) -> None:
    """Carry on once ``pending`` is done: a future (a fast path's ``ExitFuture``, a task)
    gets a done callback; anything else is awaited in a task of its own."""
    index, awaitable = pending
    if isinstance(awaitable, asyncio.Future):
        ctx.waiting = awaitable
        ctx.resume_at = index
        awaitable.add_done_callback(ctx.waited)
        return
    route = ctx.croute.route
    ctx.waiting = tasks.spawn(_continue(ctx, pending), name=f"plugin {ctx.plugin} route {route.id}")


async def _continue(ctx: ProxyContext, pending: Pending | None) -> None:
    try:
        while pending is not None:
            index, awaitable = pending
            try:
                await awaitable
            except Exception as exc:
                pending = _step(ctx, index, exc)
            else:
                pending = _step(ctx, index, None)
    except asyncio.CancelledError:
        if not _client_left(ctx):
            raise  # not for a client that left: the loop is stopping
    finally:
        ctx.waiting = None


def _client_left(ctx: ProxyContext) -> bool:
    """The wait was cancelled: True (and the connection closed) when the client left."""
    client = ctx.client
    if not (client.closed or client.half_closed):
        return False
    _log.info("client left while plugin %s waited (route %s)", ctx.plugin, ctx.croute.route.id)
    if not client.closed:
        client.transport.close()  # logged as 499 once the connection is gone
    return True


def _step(ctx: ProxyContext, index: int, failure: BaseException | None) -> Pending | None:
    """A wait ended (``failure``: what it raised): answer, forward, or the next wait."""
    assert ctx.chain is not None
    if failure is None:
        if ctx.answer is not None:
            end_answer(ctx)
            return None
        if ctx.gone():
            return None
        try:
            pending = advance(ctx, ctx.chain, index)
        except Exception as exc:
            failure = exc
        else:
            if pending is not None:
                return pending
            _resume(ctx)
            if not ctx.gone():
                _forward(ctx)
            return None
    if ctx.answer is not None:
        break_answer(ctx)
        return None
    _resume(ctx)
    if ctx.gone():
        return None
    if isinstance(failure, Exit):
        answer_exit(ctx, failure)
    else:
        plugin_failed(ctx, failure)
    return None


def _resume(ctx: ProxyContext) -> None:
    if not ctx.client.closed:
        ctx.client.pause_for_plugin(False)


_dispatch_forward: Any = None  # ``dispatch.forward``, imported on first use (dispatch imports us)


def _forward(ctx: ProxyContext) -> None:
    global _dispatch_forward
    forward: Any = _dispatch_forward
    if forward is None:
        from meshgate.proxy.http import dispatch

        forward = _dispatch_forward = dispatch.forward
    ctx.phase = Phase.RESPONSE  # nothing may change the request any more
    forward(ctx.client, ctx.req, ctx.croute, ctx.match, ctx)


def request_head(
    ctx: HttpContext, req: ProxyRequest, target: bytes, host: bytes, forwarded: bytes
) -> bytes:
    """The upstream head with the plugins' changes; also stages the body to send."""
    method = ctx.upstream_method.encode() if ctx.upstream_method else req.method
    if ctx.upstream_path is not None:
        target = ctx.upstream_path.encode("utf-8", "surrogateescape")
        query = ctx.upstream_query if ctx.upstream_query is not None else ctx.raw_query
        if query:
            target += b"?" + query.encode("latin-1", "replace")
    elif ctx.upstream_query is not None:
        target = target.partition(b"?")[0]
        if ctx.upstream_query:
            target += b"?" + ctx.upstream_query.encode("latin-1", "replace")
    ctx.upstream_target = target
    kept = req.kept
    ops = ctx.request_ops
    block = ctx.request_block
    if block is not None and block[0] is IDENTITY_HEADERS and ctx._headers is None:
        # only ``authenticate`` changed headers: = the general path below
        kept = IDENTITY_HEADERS.apply(kept, block[1])
        table = None
    elif ops is not None and ctx._headers is None and _plain_ops(ops):
        # = the table's apply below, without building the table
        kept = apply_ops(kept, _as_table_would(ops, req.headers))
        table = None
    else:
        table = ctx.header_changes
    if table is not None:
        kept = table.apply(kept, skip=frozenset({"host"}))
        forwarded = table.remove_from(forwarded)
        if table.changed and "host" in table.changed:
            new_host = table.first("host")
            if new_host:
                host = new_host.encode("latin-1", "replace")
    chunked = req.chunked
    body = ctx.upstream_body
    if body is not None:
        kept = [ln for ln in kept if ln[:15].lower() != b"content-length:"]
        kept.append(b"Content-Length: %d\r\n" % len(body))
        chunked = False
        req.body_buffer = [body] if body else []
        req.body_buffered = 0
    elif req.chunked and req.message_complete and req.exchange is None:
        req.body_buffer.append(_LAST_CHUNK)  # the body ended while plugins were running
    return build_request_head(
        method, target, host, kept, forwarded, chunked=chunked, upgrade=req.upgrade
    )


_HEAD_OWNED = frozenset({"host", *FORWARDED_NAMES})


def _plain_ops(ops: list[Op]) -> bool:
    """Request header changes ``apply_ops`` can put on the kept lines alone: sets and clears
    of names that are neither Host nor a forwarding header (those live outside the lines)."""
    return all(op != "add" and lname not in _HEAD_OWNED for op, lname, _, _ in ops)


def _as_table_would(ops: list[Op], headers: list[tuple[bytes, bytes]]) -> list[Op]:
    """``ops`` without the clears ``HeaderTable.clear`` ignores (of a name neither in the head
    nor changed before): those would otherwise fix where a name set later goes in the head.
    Only clears of names that are set afterwards matter, so the head is rarely looked at."""
    set_names = {lname for op, lname, _, _ in ops if op == "set"}
    if not any(op == "clear" and lname in set_names for op, lname, _, _ in ops):
        return ops
    present = {name.lower() for name, _ in headers}
    touched: set[str] = set()
    kept: list[Op] = []
    for change in ops:
        op, lname = change[0], change[1]
        if op == "clear" and lname not in touched and lname.encode("latin-1") not in present:
            continue
        touched.add(lname)
        kept.append(change)
    return kept


# --------------------------------------------------------------------------- answers


def plugin_failed(ctx: ProxyContext, failure: BaseException | None = None) -> None:
    """A plugin raised (``failure``, else the exception being handled): log it with route
    and plugin, answer 500 (the connection lives on)."""
    route = ctx.croute.route
    _log.error(
        "plugin %s failed in the %s phase (route %s)",
        ctx.plugin,
        ctx.phase.name.lower(),
        route.name or route.id,
        exc_info=failure if failure is not None else True,
    )
    ctx.status = 500
    ctx.client.reply(ctx.req, 500, "plugin-error", MSG_PLUGIN_ERROR)


def answer_exit(ctx: ProxyContext, exit_: Exit, *, phases: bool = True) -> None:
    """Answer with a plugin's ``Exit``; the response and body phases run on it first."""
    exit_.__traceback__ = None  # its frames hold ``ctx``: a cycle left to the cyclic GC
    ctx.exited = exit_
    assert ctx.chain is not None
    collect_rest(ctx, ctx.chain)
    lines = [f"{n}: {v}\r\n".encode("latin-1", "replace") for n, v in exit_.headers]
    body = exit_.body or b""
    if phases:
        responders, body_filters, _ = ctx.later_phases()
    if phases and not responders and not body_filters:
        ctx.status = exit_.status  # no plugin reads this head: no table (as upstream_head)
        lines = ctx.apply_response_changes(lines)
    elif phases:
        ctx.start_response(exit_.status, lines)
        try:
            run_response(ctx, responders)
            if body_filters:
                body = run_body(ctx, body_filters, body, False) + run_body(
                    ctx, body_filters, b"", True
                )
        except Exit as late:
            answer_exit(ctx, late, phases=False)
            return
        except Exception:
            plugin_failed(ctx)
            return
        table = ctx.response_table
        if table is not None and table.changed:
            lines = table.apply(lines)
    else:
        ctx.start_response(exit_.status, lines)
    ctx.response_lines = lines
    ctx.client.respond(ctx.req, exit_.status, lines, body, "plugin-exit")


# --------------------------------------------------------------------------- response + body


def upstream_head(exchange: Exchange, ctx: ProxyContext, status: int, facts: ResponseFacts) -> bool:
    """The response phase on the upstream's head; False when it took over the answer."""
    responders, body_filters, _ = ctx.later_phases()
    if not responders and not body_filters:
        # no plugin reads or changes this head: headers set in access go straight onto it
        ctx.status = status
        if ctx.response_block is not None or ctx.response_ops:
            facts.kept = ctx.apply_response_changes(facts.kept)
        ctx.response_lines = facts.kept
        return True
    ctx.start_response(status, facts.kept)
    try:
        run_response(ctx, responders)
    except Exit as exit_:
        exchange.drop_upstream()
        answer_exit(ctx, exit_, phases=False)
        return False
    except Exception:
        exchange.drop_upstream()
        plugin_failed(ctx)
        return False
    table = ctx.response_table
    kept = facts.kept
    if table is not None and table.changed:
        kept = table.apply(kept)
    if body_filters:
        kept = [ln for ln in kept if ln[:15].lower() != b"content-length:"]
        exchange.body_ctx = ctx
    facts.kept = ctx.response_lines = kept
    return True


def filter_body(exchange: Exchange, ctx: Any, data: bytes, eof: bool) -> bytes:
    """The body phase on one upstream chunk; on a plugin error the exchange is ended."""
    try:
        return run_body(ctx, ctx.later_phases()[1], data, eof)
    except Exception:
        route = ctx.croute.route
        _log.exception("plugin %s failed in the body phase (route %s)", ctx.plugin, route.id)
        exchange.plugin_body_failed()
        return b""
