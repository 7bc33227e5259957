"""The DP server: sidecars connect here over TLS and speak ``mgdp/1``.

The wire format and the conversation are documented (and encoded/decoded, sans-io) in
``meshgate.agent.dataplane.protocol``; this module is only the asyncio side: accept a TLS
connection, read the ``hello`` (10 s at most), let the engine admit the sidecar, then relay
``ack``/``nack``/``bye`` to it and send a ``ping`` every ``PING_INTERVAL``.  A connection
silent for three intervals is closed (the sidecar reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshgate.agent.dataplane.protocol import PING_INTERVAL, MessageDecoder, ProtocolError, message
from meshgate.controlplane.distribution.certs import ServerTLS
from meshgate.controlplane.distribution.engine import AdmissionRefused, DistributionEngine, Session
from meshgate.tasks import spawn

_log = logging.getLogger("meshgate.distribution")
HELLO_TIMEOUT = 10.0


def server_ssl_context(tls: ServerTLS) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory() as folder:
        cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_path.write_text(tls.cert + tls.ca_cert)
        key_path.write_text(tls.key)
        context.load_cert_chain(cert_path, key_path)
    return context


@dataclass
class DistributionServer:
    """A listening DP server; ``stop()`` closes it and every sidecar connection."""

    host: str
    port: int
    server: asyncio.Server
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def stop(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 5)


async def serve_distribution(
    engine: DistributionEngine,
    tls: ServerTLS,
    host: str = "127.0.0.1",
    port: int = 5678,
    *,
    ping_interval: float = PING_INTERVAL,
) -> DistributionServer:
    """Listen for sidecars on ``host:port`` (0 = any free port) with ``tls``."""
    holder: list[DistributionServer] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holder[0].writers.add(writer)
        try:
            await _connection(engine, reader, writer, ping_interval)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            _log.info("sidecar connection ended: %s", exc)
        finally:
            holder[0].writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(handle, host, port, ssl=server_ssl_context(tls))
    bound = server.sockets[0].getsockname()[1]
    holder.append(DistributionServer(host, int(bound), server))
    return holder[0]


async def _connection(
    engine: DistributionEngine,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ping_interval: float,
) -> None:
    decoder = MessageDecoder()
    pending: list[dict[str, Any]] = []
    try:
        while not pending:
            data = await asyncio.wait_for(reader.read(1 << 16), HELLO_TIMEOUT)
            if not data:
                return
            pending += decoder.feed(data)
    except ProtocolError as exc:
        await _refuse(writer, f"protocol error: {exc}")
        return
    hello = pending.pop(0)
    if hello["type"] != "hello":
        await _refuse(writer, "the first message must be hello")
        return
    try:
        session = await engine.admit(hello, writer.write, writer.close)
    except AdmissionRefused as exc:
        _log.warning("sidecar refused: %s", exc)
        await _refuse(writer, str(exc))
        return
    mesh, name = session.key
    _log.info("dataplane %s/%s connected", mesh, name)
    pinger = spawn(_ping(writer, ping_interval), name=f"dp-ping-{mesh}/{name}")
    graceful = False
    try:
        graceful = await _relay(engine, session, reader, decoder, pending, ping_interval)
    except ProtocolError as exc:
        _log.warning("dataplane %s/%s broke the protocol: %s", mesh, name, exc)
    finally:
        pinger.cancel()
        await engine.disconnected(session, graceful=graceful)
        _log.info("dataplane %s/%s disconnected%s", mesh, name, " (bye)" if graceful else "")


async def _relay(
    engine: DistributionEngine,
    session: Session,
    reader: asyncio.StreamReader,
    decoder: MessageDecoder,
    pending: list[dict[str, Any]],
    ping_interval: float,
) -> bool:
    """Handle the sidecar's messages until it leaves; True when it said ``bye``."""
    while not session.closed:
        for item in pending:
            kind = item["type"]
            if kind == "ack":
                engine.acked(session, str(item["version"]))
            elif kind == "nack":
                engine.nacked(session, str(item["version"]), str(item["error"]))
            elif kind == "bye":
                return True
        pending = []
        try:
            data = await asyncio.wait_for(reader.read(1 << 16), 3 * ping_interval)
        except TimeoutError:
            _log.warning("dataplane %s/%s went silent; closing", *session.key)
            return False
        if not data:
            return False
        pending = decoder.feed(data)
    return False


async def _ping(writer: asyncio.StreamWriter, interval: float) -> None:
    while not writer.is_closing():
        await asyncio.sleep(interval)
        writer.write(message("ping"))


async def _refuse(writer: asyncio.StreamWriter, error: str) -> None:
    writer.write(message("refused", error=error))
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        await writer.drain()
