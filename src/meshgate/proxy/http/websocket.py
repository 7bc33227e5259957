"""``Tunnel``: the byte pipe a connection becomes after an upstream ``101 Switching Protocols``.

Bytes are relayed both ways as they come; a side whose write buffer is full pauses reading
on the other side; when either side closes (or sends EOF), the other is closed after its
buffer drains — WebSocket ends with its own close handshake, so no half-close is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshgate.proxy.http.server import HttpProxyProtocol
    from meshgate.proxy.http.upstream import UpstreamProtocol


class Tunnel:
    """A spliced client connection and upstream connection."""

    __slots__ = ("bytes_down", "bytes_up", "client", "closed", "upstream")

    def __init__(self, client: HttpProxyProtocol, upstream: UpstreamProtocol) -> None:
        self.client = client
        self.upstream = upstream
        self.closed = False
        self.bytes_up = 0
        self.bytes_down = 0

    def from_client(self, data: bytes) -> None:
        if not self.closed:
            self.bytes_up += len(data)
            self.upstream.transport.write(data)

    def from_upstream(self, data: bytes) -> None:
        if not self.closed:
            self.bytes_down += len(data)
            self.client.transport.write(data)

    def client_write_paused(self, paused: bool) -> None:
        if self.closed:
            return
        if paused:
            self.upstream.transport.pause_reading()
        else:
            self.upstream.transport.resume_reading()

    def upstream_write_paused(self, paused: bool) -> None:
        if self.closed:
            return
        if paused:
            self.client.transport.pause_reading()
        else:
            self.client.transport.resume_reading()

    def upstream_eof(self) -> bool:
        """EOF from upstream: let its transport close; the client side follows."""
        return False

    def upstream_closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.client.transport.close()

    def client_closed(self) -> None:
        if not self.closed:
            self.closed = True
            self.upstream.transport.close()
