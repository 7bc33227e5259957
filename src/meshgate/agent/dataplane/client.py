"""The sidecar agent: keep a proxy running on the snapshots a control plane pushes.

``DataplaneAgent.run(stop)``:

1. starts the proxy from the cached snapshot, if there is one (so a sidecar restarted while
   its control plane is down still serves);
2. connects to the control plane over TLS (``mgdp/1``, see ``protocol``), sends ``hello``
   with its Dataplane resource, token and CSR;
3. applies every pushed snapshot (its own key filled in), ACKs it and caches it — or NACKs
   it with the error and keeps running the previous one;
4. on any disconnect, reconnects with exponential back-off (``backoff_initial`` doubling up
   to ``backoff_max``, back to ``backoff_initial`` after a session that was admitted) and
   keeps serving meanwhile.  With several control-plane replicas (``cp_fallbacks``, more
   ``HOST:PORT``), each reconnect goes to the next one, so a sidecar whose control plane died
   is admitted by another replica after ``backoff_initial``.

Trust in the control plane: ``ca_file`` (verify the chain and host name), else
``fingerprint`` (pin the server certificate), else trust on first use (the first
certificate's fingerprint is pinned in the state directory and required afterwards).
A ``refused`` answer (bad token, invalid dataplane) ends ``run`` with ``Refused`` when
nothing is being served yet; otherwise the agent keeps serving and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshgate.agent.dataplane import snapshot_codec
from meshgate.agent.dataplane.protocol import (
    PING_INTERVAL,
    PROTOCOL_VERSION,
    MessageDecoder,
    ProtocolError,
    message,
)
from meshgate.agent.dataplane.state import StateDir, with_local_key

if TYPE_CHECKING:
    from meshgate import snapshot
    from meshgate.agent.supervisor import Proxy

_log = logging.getLogger("meshgate.dataplane")


class Refused(Exception):
    """The control plane refused this sidecar (the message says why)."""


class TrustError(Exception):
    """The control plane's certificate is not the trusted one."""


@dataclass(slots=True)
class AgentConfig:
    cp_host: str
    cp_port: int
    token_file: Path
    dataplane: dict[str, Any]
    state_dir: Path
    ca_file: Path | None = None
    fingerprint: str | None = None
    backoff_initial: float = 0.2
    backoff_max: float = 5.0
    connect_timeout: float = 5.0
    ping_interval: float = PING_INTERVAL
    cp_fallbacks: list[str] = field(default_factory=list)  # more replicas, HOST:PORT each


class DataplaneAgent:
    def __init__(self, config: AgentConfig, proxy: Proxy) -> None:
        self.config = config
        self.proxy = proxy
        self.state = StateDir(config.state_dir)
        self.running: snapshot.Snapshot | None = None
        self.connected = asyncio.Event()
        self.applied = asyncio.Condition()
        self.name = str(config.dataplane.get("name", ""))
        self._writer: asyncio.StreamWriter | None = None
        self.targets = [
            (config.cp_host, config.cp_port),
            *map(split_host_port, config.cp_fallbacks),
        ]
        self.target = 0  # index in ``targets`` of the control plane to connect to

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; raises ``Refused`` when refused before serving."""
        await self._start_from_cache()
        delay = self.config.backoff_initial
        while not stop.is_set():
            session = asyncio.ensure_future(self._session())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not session.done():
                await self._say_bye()
                session.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await session
                break
            if self.connected.is_set():
                delay = self.config.backoff_initial  # a session that got in resets back-off
            self.connected.clear()
            where = "{}:{}".format(*self.targets[self.target])
            self.target = (self.target + 1) % len(self.targets)
            try:
                session.result()
            except Refused as exc:
                if self.running is None:  # every replica judges alike: they share the store
                    raise
                _log.error("control plane %s refused this sidecar: %s", where, exc)
            except (OSError, ssl.SSLError, ProtocolError, TrustError, TimeoutError) as exc:
                _log.warning(
                    "control plane %s: %s; trying %s:%d in %.1fs",
                    where, exc, *self.targets[self.target], delay,
                )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, self.config.backoff_max)

    async def _say_bye(self) -> None:
        """Graceful leave: the control plane removes this dataplane from the mesh."""
        writer = self._writer
        if writer is None or not self.connected.is_set():
            return
        writer.write(message("bye"))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), 1.0)

    async def _start_from_cache(self) -> None:
        cached = self.state.load_snapshot()
        if cached is None:
            return
        try:
            await self.proxy.start(with_local_key(cached, self.state.key_pem()))
        except Exception as exc:
            _log.warning("cached snapshot %s does not start: %s", cached.version, exc)
            return
        await self._mark_running(cached)
        _log.info("serving cached snapshot %s while connecting", cached.version)

    async def _session(self) -> None:
        config = self.config
        host, port = self.targets[self.target]
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=self._ssl_context(),
                server_hostname=host if config.ca_file else None,
            ),
            config.connect_timeout,
        )
        self._writer = writer
        try:
            self._check_pin(writer)
            token = config.token_file.read_text().strip()
            writer.write(
                message(
                    "hello",
                    protocol=PROTOCOL_VERSION,
                    token=token,
                    dataplane=config.dataplane,
                    csr=self.state.csr(self.name),
                    running=self.running.version if self.running else None,
                )
            )
            decoder = MessageDecoder()
            while True:
                data = await asyncio.wait_for(reader.read(1 << 16), 3 * config.ping_interval)
                if not data:
                    raise ConnectionResetError("the control plane closed the connection")
                messages = decoder.feed(data)
                data = b""
                while messages:  # popped: a pushed snapshot's JSON is freed once applied
                    await self._handle(messages.pop(0), writer)
        finally:
            self._writer = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, item: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        kind = item["type"]
        if kind == "refused":
            raise Refused(str(item["error"]))
        if kind == "welcome":
            self.connected.set()
            _log.info("admitted as %s/%s", item["mesh"], item["name"])
        elif kind == "ping":
            writer.write(message("pong"))
        elif kind == "snapshot":
            version = str(item["version"])
            error = await self._apply(item["snapshot"], version)
            if error is None:
                writer.write(message("ack", version=version))
            else:
                _log.error("snapshot %s refused, keeping %s: %s", version, self._version(), error)
                writer.write(message("nack", version=version, error=error))

    async def _apply(self, raw: Any, version: str) -> str | None:
        """Run the pushed snapshot; the error text when it cannot run (None: it runs)."""
        try:
            received = snapshot_codec.from_builtins(raw)
            if received.version != version:
                return f"snapshot version {received.version!r} differs from {version!r}"
            ready = with_local_key(received, self.state.key_pem())
            if self.running is None:
                await self.proxy.start(ready)
            else:
                await self.proxy.apply(ready)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        self.state.save_snapshot(received)
        await self._mark_running(received)
        _log.info("running snapshot %s", version)
        return None

    async def _mark_running(self, snap: snapshot.Snapshot) -> None:
        async with self.applied:
            self.running = snap
            self.applied.notify_all()

    def _version(self) -> str | None:
        return self.running.version if self.running else None

    def _ssl_context(self) -> ssl.SSLContext:
        if self.config.ca_file is not None:
            return ssl.create_default_context(cafile=str(self.config.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the certificate is checked by its fingerprint
        return context

    def _check_pin(self, writer: asyncio.StreamWriter) -> None:
        if self.config.ca_file is not None:
            return
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            raise TrustError("the control plane presented no certificate")
        seen = "sha256:" + hashlib.sha256(der).hexdigest()
        expected = self.config.fingerprint or self.state.pinned_fingerprint()
        if expected is None:
            _log.warning("trusting the control plane certificate on first use: %s", seen)
            self.state.pin_fingerprint(seen)
        elif seen.lower() != expected.lower():
            raise TrustError(f"control plane certificate {seen} is not the pinned {expected}")


def split_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) → (host, port); ``ValueError`` otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
