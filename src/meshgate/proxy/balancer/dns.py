"""Resolving endpoint host names to the addresses a balancer connects to.

IP literals are never resolved.  Names are resolved with the loop's ``getaddrinfo``, trying
address families in order and keeping the first that answers (A before AAAA by default, as
Kong's ``dns_order`` does), so a dual-stack "localhost" does not yield a ``::1`` target that a
127.0.0.1-only upstream would refuse.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

DEFAULT_FAMILIES: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)


class ResolveError(Exception):
    """A name could not be resolved to any address."""


def ip_literal(host: str) -> str | None:
    """``host`` as an address when it is an IPv4/IPv6 literal (brackets removed), else None."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return None
    return candidate


def is_localhost(name: str) -> bool:
    """Names that always mean the loopback interface (RFC 6761)."""
    lowered = name.lower().rstrip(".")
    return lowered == "localhost" or lowered.endswith(".localhost")


async def resolve(
    name: str, families: Sequence[int] = DEFAULT_FAMILIES, time_limit: float = 5.0
) -> tuple[str, ...]:
    """The addresses of ``name`` (sorted, deduplicated) from the first family that has some.

    ``time_limit`` bounds the whole lookup, all families included.
    """
    loop = asyncio.get_running_loop()
    reason: BaseException | None = None
    try:
        async with asyncio.timeout(time_limit):
            for family in families:
                try:
                    infos = await loop.getaddrinfo(
                        name, None, family=family, type=socket.SOCK_STREAM
                    )
                except OSError as exc:
                    reason = exc
                    continue
                addresses = sorted({str(info[4][0]) for info in infos})
                if addresses:
                    return tuple(addresses)
    except TimeoutError:
        reason = TimeoutError(f"no answer within {time_limit} s")
    raise ResolveError(f"cannot resolve {name!r}: {reason or 'no addresses'}")
