"""Active health checks: periodic probes of a balancer's targets (Kong's ``healthchecks.active``).

Healthy targets are probed every ``healthy.interval`` seconds and unhealthy ones every
``unhealthy.interval`` seconds (0 disables that half).  A probe is a TCP connect (``tcp``,
``grpc``), a TLS handshake (``grpcs``) or an HTTP/1.1 ``GET http_path`` over TCP or TLS
(``http``, ``https``) whose status line alone is read; the whole probe runs under ``timeout``.
At most ``concurrency`` probes run at once.  Results go through the shared health counters
with the active thresholds.  This is off the hot path, so a minimal asyncio client suffices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from meshgate.proxy.balancer.dns import ip_literal
from meshgate.proxy.balancer.health_counters import (
    SUCCESS,
    TCP_FAILURE,
    TIMEOUT,
    Thresholds,
    record,
)
from meshgate.proxy.balancer.target import DOWN_ACTIVE, Target
from meshgate.tasks import spawn

if TYPE_CHECKING:
    from meshgate import snapshot

_log = logging.getLogger("meshgate.proxy.health")

_STATUS_LINE_LIMIT = 8192


def parse_status_line(line: bytes) -> int | None:
    """The status code of an ``HTTP/1.x NNN reason`` line, or None when malformed."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or len(parts[1]) != 3:
        return None
    return int(parts[1]) if parts[1].isdigit() else None


class ActiveChecker:
    """Runs the probe loops of one balancer until cancelled."""

    def __init__(
        self,
        config: snapshot.ActiveHealthcheck,
        targets: Callable[[], Sequence[Target]],
        name: str,
    ) -> None:
        self.config = config
        self._targets = targets  # called per round: the target set changes with DNS
        self._name = name
        self._thresholds = Thresholds.active(config)
        self._limit = asyncio.Semaphore(max(1, config.concurrency))
        self._ssl: ssl.SSLContext | None = None
        self._header_lines = "".join(
            f"{key}: {value}\r\n" for key, values in config.headers.items() for value in values
        )

    @property
    def enabled(self) -> bool:
        return self.config.healthy.interval > 0 or self.config.unhealthy.interval > 0

    def start(self) -> list[asyncio.Task[None]]:
        """Spawn one loop per enabled interval."""
        tasks = []
        for healthy, interval in (
            (True, self.config.healthy.interval),
            (False, self.config.unhealthy.interval),
        ):
            if interval > 0:
                state = "healthy" if healthy else "unhealthy"
                tasks.append(
                    spawn(self._loop(healthy, interval), name=f"healthcheck:{self._name}:{state}")
                )
        return tasks

    async def _loop(self, healthy: bool, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.check([t for t in self._targets() if t.healthy == healthy])

    async def check(self, targets: Sequence[Target]) -> None:
        """Probe ``targets`` (concurrently, within the limit) and record the results."""
        if targets:
            await asyncio.gather(*(self._check_one(t) for t in targets))

    async def _check_one(self, t: Target) -> None:
        async with self._limit:
            result = await self.probe(t)
        if result is not None:
            record(t, result, self._thresholds, DOWN_ACTIVE)

    async def probe(self, t: Target) -> int | None:
        """One probe of ``t``: SUCCESS, a failure kind, or None for a status in neither list."""
        kind = self.config.type
        tls = kind in ("https", "grpcs")
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self.config.timeout):
                reader, writer = await asyncio.open_connection(
                    t.address,
                    t.port,
                    ssl=self._ssl_context() if tls else None,
                    server_hostname=self._server_hostname(t) if tls else None,
                )
                if kind not in ("http", "https"):
                    return SUCCESS
                writer.write(self._request(t))
                await writer.drain()
                line = await reader.readuntil(b"\n")
        except TimeoutError:
            return TIMEOUT
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            _log.debug("healthcheck %s %s failed: %r", self._name, t.label, exc)
            return TCP_FAILURE
        finally:
            if writer is not None:
                await _close(writer)
        status = parse_status_line(line[:_STATUS_LINE_LIMIT])
        if status is None:
            return TCP_FAILURE
        return self._thresholds.classify_status(status)

    def _request(self, t: Target) -> bytes:
        host = f"[{t.host}]" if ":" in t.host else t.host
        if t.port not in (80, 443):
            host = f"{host}:{t.port}"
        return (
            f"GET {self.config.http_path} HTTP/1.1\r\nHost: {host}\r\n"
            f"User-Agent: meshgate-healthcheck\r\n{self._header_lines}Connection: close\r\n\r\n"
        ).encode("latin-1")

    def _server_hostname(self, t: Target) -> str:
        if self.config.https_sni:
            return self.config.https_sni
        return t.address if ip_literal(t.host) else t.host

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            if not self.config.https_verify_certificate:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl = context
        return self._ssl


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
