"""Helpers for the TLS tests: a real TLS exchange over 127.0.0.1 that reports what each side
saw, an in-memory handshake, and a client that accepts any certificate."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from meshgate.proxy.tls import sni_of

Runner = Callable[[Coroutine[Any, Any, Any]], Any]  # asyncio.run or uvloop.run


@dataclass
class Exchange:
    """What one TLS connection looked like from both ends."""

    served_cert_der: bytes  # the certificate the client received
    alpn: str | None  # the protocol the client negotiated
    sni_seen_by_server: str | None
    client_cert_seen_by_server: dict[str, Any] | None
    reply: bytes


async def exchange(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    server_hostname: str | None,
    on_client_connected: Callable[[asyncio.BaseTransport], None] | None = None,
) -> Exchange:
    """Serve ``server_context`` on 127.0.0.1, connect with ``client_context``, read "ok"."""
    seen: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["sni"] = sni_of(writer.transport)
        seen["client_cert"] = writer.get_extra_info("ssl_object").getpeercert() or None
        writer.write(b"ok")
        await writer.drain()
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    async with server:
        port = server.sockets[0].getsockname()[1]
        hostname_kw: dict[str, Any] = {}
        if server_hostname is not None:
            hostname_kw["server_hostname"] = server_hostname
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, **hostname_kw
        )
        try:
            if on_client_connected is not None:
                on_client_connected(writer.transport)
            reply = await reader.read(2)
            ssl_object = writer.get_extra_info("ssl_object")
            served = ssl_object.getpeercert(binary_form=True)
            alpn = ssl_object.selected_alpn_protocol()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    return Exchange(
        served_cert_der=served,
        alpn=alpn,
        sni_seen_by_server=seen.get("sni"),
        client_cert_seen_by_server=seen.get("client_cert"),
        reply=reply,
    )


def memory_handshake(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_hostname: str | None
) -> ssl.SSLObject:
    """Handshake two in-memory TLS endpoints; the client's error (with the server's alert)
    propagates.  asyncio and uvloop drop a server's handshake alert on the floor (the
    client sees a reset), so tests that check the alert itself use this."""
    client_in, client_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(client_in, client_out, server_hostname=server_hostname)
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    client_done = server_done = False
    for _ in range(10):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                server_done = True  # its alert is in server_out: the client reports it
        client_in.write(server_out.read())
        if client_done and server_done:
            return client
    raise AssertionError("handshake did not finish")


def insecure_client() -> ssl.SSLContext:
    """A client context that accepts any certificate (to see what a server serves)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context
