"""Permissive mesh listeners: TLS and plain text on one port, told apart by the first byte.

``FirstByteSniffer`` is the protocol every accepted connection of such a listener starts
with.  Its first read decides: 0x16 (a TLS handshake record) → the loop's own TLS protocol
(uvloop's, else asyncio's) is put between the socket and the application protocol and fed
the bytes already read; anything else → the application protocol takes the socket as it is
and gets those bytes.  Either way the decision costs one read and no copy beyond the first
chunk; afterwards the sniffer is out of the path.

A client that says nothing for ``silence_timeout`` seconds is handed over as plain text
(``plain_on_silence``, for TCP protocols where the server may speak first) or closed.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any, cast

TLS_HANDSHAKE_RECORD = 0x16

AppFactory = Callable[[bool], asyncio.Protocol]  # (connection is TLS) -> application protocol


_tls_protocols: dict[type, Any] = {}  # loop class -> its TLS protocol class


def _tls_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    found = _tls_protocols.get(type(loop))
    if found is None:
        if type(loop).__module__.startswith("uvloop"):
            import uvloop.loop

            found = getattr(uvloop.loop, "SSLProtocol")  # noqa: B009 - not in its stubs
        else:
            from asyncio.sslproto import SSLProtocol

            found = SSLProtocol
        _tls_protocols[type(loop)] = found
    return found


class FirstByteSniffer(asyncio.Protocol):
    """An accepted connection until its first bytes show whether it speaks TLS."""

    __slots__ = (
        "_silence_timeout",
        "context",
        "handshake_timeout",
        "make_app",
        "plain_on_silence",
        "silence_timer",
        "transport",
    )

    def __init__(
        self,
        make_app: AppFactory,
        context: ssl.SSLContext,
        *,
        handshake_timeout: float,
        silence_timeout: float,
        plain_on_silence: bool,
    ) -> None:
        self.make_app = make_app
        self.context = context
        self.handshake_timeout = handshake_timeout
        self.plain_on_silence = plain_on_silence
        self.transport: asyncio.Transport | None = None
        self.silence_timer: asyncio.TimerHandle | None = None
        self._silence_timeout = silence_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self.silence_timer = loop.call_later(self._silence_timeout, self._on_silence)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or not data:
            return
        self.transport = None
        self._cancel_timer()
        if data[0] == TLS_HANDSHAKE_RECORD:
            self._start_tls(transport, data)
        else:
            self._start_plain(transport, data)

    def eof_received(self) -> bool | None:
        self._cancel_timer()
        return None  # nothing was said: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.transport = None

    def _on_silence(self) -> None:
        self.silence_timer = None
        transport, self.transport = self.transport, None
        if transport is None or transport.is_closing():
            return
        if self.plain_on_silence:
            self._start_plain(transport, b"")
        else:
            transport.close()

    def _cancel_timer(self) -> None:
        if self.silence_timer is not None:
            self.silence_timer.cancel()
            self.silence_timer = None

    def _start_plain(self, transport: asyncio.Transport, data: bytes) -> None:
        app = self.make_app(False)
        transport.set_protocol(app)
        app.connection_made(transport)
        if data and not transport.is_closing():
            app.data_received(data)

    def _start_tls(self, transport: asyncio.Transport, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        app = self.make_app(True)
        tls = _tls_protocol_class(loop)(
            loop,
            app,
            self.context,
            None,
            server_side=True,
            ssl_handshake_timeout=self.handshake_timeout,
        )
        transport.set_protocol(tls)
        tls.connection_made(transport)
        view = memoryview(data)
        while view and not transport.is_closing():
            buffer = tls.get_buffer(len(view))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            tls.buffer_updated(size)
            view = view[size:]
