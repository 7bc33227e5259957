"""The L4 proxy: each accepted connection bridged to one upstream connection, byte for byte.

``TcpDownstream`` is the client's side (the listener's protocol), ``TcpUpstream`` the
connection it opens to a target of its service's cluster.  Nothing is read from the client
until the upstream is connected; from then on each side writes what the other reads.

* Back-pressure: a side whose write buffer passes the high-water mark pauses reading on the
  other side until it drains below the low-water mark.
* Half-close: an EOF is passed on with ``write_eof`` where the other side can take one
  (plain TCP).  A TLS side cannot half-close (asyncio's TLS has no ``write_eof``): an EOF
  towards it leaves the connection open until the other direction ends or goes idle; an
  EOF from it (TLS close_notify) closes the whole connection.
* ``Service.idle_timeout_ms``: no byte either way for that long closes both sides.
* ``ConnectionLimits.max_connections`` of the cluster (shared with HTTP's counter when the
  service has a ``ServicePolicy``): a connection over it is closed at once.
* Upstream TLS and its identity check (``Service.tls_peer_ids``) come with the service's
  ``ssl_context``: a failed handshake fails the connect like a refused one.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, cast

from meshgate import tasks
from meshgate.proxy.http.clock import Sweeper, monotonic
from meshgate.proxy.tls.identity import peer_ids_of

if TYPE_CHECKING:
    from meshgate.proxy.balancer import Target
    from meshgate.proxy.compiled import CompiledService, RuntimeState
    from meshgate.proxy.http.policy import LimitState
    from meshgate.proxy.http.settings import ProxySettings
    from meshgate.proxy.tcp.listener import TcpListenerRoute
    from meshgate.proxy.tls.permissions import InboundGuard

_log = logging.getLogger("meshgate.proxy.tcp")

# Why the client's side is not reading (a bit each).
WAIT_CONNECT, WAIT_UPSTREAM_WRITE = 1, 2


class TcpEngine:
    """What every TCP connection of one ``RuntimeState`` in this process shares."""

    __slots__ = ("connections", "loop", "servers", "settings", "state", "sweeper")

    def __init__(
        self, state: RuntimeState, settings: ProxySettings, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.state = state
        self.settings = settings
        self.loop = loop
        self.sweeper = Sweeper(loop, settings.timer_resolution)
        self.connections: set[TcpDownstream] = set()
        self.servers: list[asyncio.Server] = []


_engines: dict[int, TcpEngine] = {}  # id(RuntimeState) -> its TCP engine in this process
_server_engines: dict[int, TcpEngine] = {}  # id(asyncio.Server) -> its engine


def tcp_engine_for(state: RuntimeState, settings: ProxySettings) -> TcpEngine:
    """The TCP engine of ``state`` in the running loop (made on first use)."""
    loop = asyncio.get_running_loop()
    engine = _engines.get(id(state))
    if engine is None or engine.state is not state or engine.loop is not loop:
        engine = TcpEngine(state, settings, loop)
        _engines[id(state)] = engine
    return engine


def register_server(server: asyncio.Server, engine: TcpEngine) -> None:
    """Link ``server`` to ``engine`` (and unlink servers closed since, e.g. by a reload)."""
    for closed in [s for s in engine.servers if not s.is_serving()]:
        engine.servers.remove(closed)
        _server_engines.pop(id(closed), None)
    engine.servers.append(server)
    _server_engines[id(server)] = engine


def engine_of_server(server: asyncio.Server) -> TcpEngine | None:
    """The TCP engine ``server`` was started for (the link is forgotten: used by drain)."""
    engine = _server_engines.pop(id(server), None)
    if engine is not None and server in engine.servers:
        engine.servers.remove(server)
    return engine


def forget_engine(engine: TcpEngine) -> None:
    """``engine`` has no server left: stop its timer and drop it."""
    engine.sweeper.close()
    if _engines.get(id(engine.state)) is engine:
        del _engines[id(engine.state)]


class TcpDownstream(asyncio.Protocol):
    """A client connection of a ``tcp`` listener."""

    __slots__ = (
        "balancer_target",
        "closed",
        "connect_time",
        "deadline",
        "early",
        "engine",
        "eof_from_client",
        "eof_from_upstream",
        "idle_timeout",
        "last_active",
        "limit",
        "paused",
        "peer",
        "peer_ids",
        "route",
        "service",
        "tls",
        "transport",
        "upstream",
    )

    def __init__(self, engine: TcpEngine, route: TcpListenerRoute, *, tls: bool) -> None:
        self.engine = engine
        self.route = route
        self.tls = tls
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self.upstream: TcpUpstream | None = None
        self.service: CompiledService | None = None
        self.balancer_target: Target | None = None
        self.limit: LimitState | None = None
        self.paused = 0
        self.peer = ""  # the client's address, for logs
        self.peer_ids: tuple[str, ...] = ()  # URI SANs of the client's verified certificate
        self.eof_from_client = False
        self.eof_from_upstream = False
        self.closed = False
        self.early: list[bytes] = []  # client bytes read before the upstream connected
        self.connect_time = 0.0  # seconds the upstream connect took (the balancer's latency)
        self.deadline = 0.0
        self.idle_timeout = 0.0
        self.last_active = 0.0

    # ------------------------------------------------------------------ client side events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        engine = self.engine
        settings = engine.settings
        transport.set_write_buffer_limits(settings.high_water, settings.low_water)
        route = self.route
        if route.guard is not None:
            if self.tls:
                self.peer_ids = peer_ids_of(transport)
            peer = transport.get_extra_info("peername")
            self.peer = peer[0] if peer else ""
            if not route.guard.allows(self.peer_ids, self.peer):
                self._close_both()
                return
        service = route.pick_service(engine.state.config)
        if service is None:
            _log.warning("tcp listener %s: no service to forward to", route.listener)
            self._close_both()
            return
        policy = service.policy
        limit = policy.limits if policy is not None else None
        if limit is not None:
            if limit.connections >= limit.max_connections:
                _log.info(
                    "tcp listener %s: cluster %s over max_connections, connection closed",
                    route.listener,
                    service.balancer.cluster.name,
                )
                self._close_both()
                return
            limit.connections += 1
            self.limit = limit
        self.service = service
        idle_ms = service.service.idle_timeout_ms
        engine.connections.add(self)
        self._pause(WAIT_CONNECT)
        if idle_ms is not None:
            self.idle_timeout = idle_ms / 1000
            engine.sweeper.now = self.last_active = monotonic()  # it may not be ticking
            self.deadline = self.last_active + self.idle_timeout
            engine.sweeper.add(self)
        tasks.spawn(self._connect(service), name=f"tcp-connect {route.listener}")

    def data_received(self, data: bytes) -> None:
        upstream = self.upstream
        if upstream is not None:
            self.last_active = self.engine.sweeper.now
            upstream.transport.write(data)
        elif not self.closed:
            # read before the upstream is there (reading may start before the pause
            # takes): kept, and reading stays paused until the connect is done
            self.early.append(data)

    def eof_received(self) -> bool | None:
        self.eof_from_client = True
        if self.tls:
            return None  # close_notify: the TLS layer closes; connection_lost follows
        upstream = self.upstream
        if upstream is not None:
            return self._pass_eof(upstream.transport, self.eof_from_upstream)
        return True  # passed on once the upstream is connected

    def pause_writing(self) -> None:
        upstream = self.upstream
        if upstream is not None:
            upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        upstream = self.upstream
        if upstream is not None and not upstream.transport.is_closing():
            upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_both()

    def rejudge(self, guard: InboundGuard | None) -> None:
        """The listener's permissions changed: close the connection if they now deny it."""
        if guard is not None and not self.closed and not guard.allows(self.peer_ids, self.peer):
            self._close_both()

    def on_deadline(self, now: float) -> None:
        if self.closed:
            return
        idle_until = self.last_active + self.idle_timeout
        if idle_until > now:
            self.deadline = idle_until
            return
        _log.debug("tcp listener %s: idle timeout", self.route.listener)
        self._close_both()

    # ------------------------------------------------------------------ upstream

    async def _connect(self, service: CompiledService) -> None:
        loop = self.engine.loop
        balancer = service.balancer
        tried: list[Target] = []
        for _ in range(service.retries + 1):
            if self.closed:
                return
            target = balancer.pick(None, tried) if tried else balancer.pick(None)
            if target is None:
                break
            tried.append(target)
            started = loop.time()
            try:
                async with asyncio.timeout(service.connect_timeout):
                    _, upstream = await loop.create_connection(
                        lambda: TcpUpstream(self),
                        target.address,
                        target.port,
                        ssl=service.ssl_context,
                        server_hostname=service.server_hostname
                        if service.ssl_context is not None
                        else None,
                    )
            except TimeoutError:
                balancer.report(target, "timeout")
                _log.info("tcp %s: connect to %s timed out", self.route.listener, target.address)
            except ssl.SSLError as exc:
                balancer.report(target, "tcp_error")
                _log.warning("tcp %s: upstream TLS failed: %s", self.route.listener, exc)
            except OSError as exc:
                balancer.report(target, "tcp_error")
                _log.info("tcp %s: connect failed: %s", self.route.listener, exc)
            else:
                self.connect_time = loop.time() - started
                self._attach(upstream, target)
                return
        self._close_both()

    def _attach(self, upstream: TcpUpstream, target: Target) -> None:
        if self.closed:
            upstream.transport.close()
            return
        self.upstream = upstream
        self.balancer_target = target
        if self.service is not None:
            self.service.balancer.on_request_start(target)
        if self.early:
            upstream.transport.writelines(self.early)
            self.early = []
        if self.eof_from_client and not self.tls:
            self._pass_eof(upstream.transport, False)
        self._resume(WAIT_CONNECT)

    def _pass_eof(self, to: asyncio.Transport, other_way_ended: bool) -> bool | None:
        """An EOF came from one side: hand it to ``to`` (True: keep this transport open)."""
        if other_way_ended:
            self._close_both()
            return None
        if to.can_write_eof() and not to.is_closing():
            to.write_eof()
        return True

    # ------------------------------------------------------------------ flow control

    def _pause(self, reason: int) -> None:
        if not self.paused and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def _resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and not self.closed and not self.transport.is_closing():
                self.transport.resume_reading()

    def upstream_write_paused(self, paused: bool) -> None:
        if paused:
            self._pause(WAIT_UPSTREAM_WRITE)
        else:
            self._resume(WAIT_UPSTREAM_WRITE)

    def _close_both(self) -> None:
        """End the connection on both sides (pending writes are flushed first)."""
        if self.closed:
            return
        self.closed = True
        engine = self.engine
        engine.connections.discard(self)
        if self.idle_timeout:
            engine.sweeper.discard(self)
        limit, self.limit = self.limit, None
        if limit is not None:
            limit.connections -= 1
            limit.slot_freed()
        target, self.balancer_target = self.balancer_target, None
        if target is not None and self.service is not None:
            self.service.balancer.on_request_end(target, self.connect_time)
        self.transport.close()
        upstream = self.upstream
        if upstream is not None:
            upstream.transport.close()

    def abort(self) -> None:
        """Cut both sides at once (drain's deadline)."""
        upstream = self.upstream
        self._close_both()
        self.transport.abort()
        if upstream is not None:
            upstream.transport.abort()


class TcpUpstream(asyncio.Protocol):
    """The connection a ``TcpDownstream`` opened to its target."""

    __slots__ = ("down", "tls", "transport")

    def __init__(self, down: TcpDownstream) -> None:
        self.down = down
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # connection_made
        self.tls = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        settings = self.down.engine.settings
        transport.set_write_buffer_limits(settings.high_water, settings.low_water)
        self.tls = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        down = self.down
        down.last_active = down.engine.sweeper.now
        down.transport.write(data)

    def eof_received(self) -> bool | None:
        down = self.down
        down.eof_from_upstream = True
        if self.tls:
            return None
        if down.tls:
            return True  # the client cannot be half-closed: it ends when it closes
        return down._pass_eof(down.transport, down.eof_from_client)

    def pause_writing(self) -> None:
        self.down.upstream_write_paused(True)

    def resume_writing(self) -> None:
        self.down.upstream_write_paused(False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.down._close_both()
