"""``NodeSettings``: what the compiler needs to know about the node a snapshot is for.

Listeners come from a Kong-style ``proxy_listen`` string (``"0.0.0.0:8000, 0.0.0.0:8443
ssl"``).  Flags understood: ``ssl`` (an https listener), ``reuseport``, ``backlog=N``; the other
nginx flags Kong allows (``http2``, ``proxy_protocol``, ``deferred``, ``bind``, ``ipv6only=…``,
``so_keepalive=…``) are accepted and ignored; anything else is a violation.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from meshgate.errors import ConfigError, Violation
from meshgate.snapshot import Listener

DEFAULT_PROXY_LISTEN = "127.0.0.1:8000, 127.0.0.1:8443 ssl"
_IGNORED_FLAGS = frozenset({"http2", "proxy_protocol", "deferred", "bind"})
_IGNORED_FLAG_PREFIXES = ("ipv6only=", "so_keepalive=")


def _parse_address(text: str) -> tuple[str, int]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise ValueError(f"invalid address '{text}'")
        host, port_text = text[1:close], text[close + 2 :]
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
    else:
        host, port_text = "0.0.0.0", text
    if host == "*":
        host = "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"invalid address '{text}': expected an IP address and a port") from None
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid port in '{text}'")
    return host, int(port_text)


def parse_listener(entry: str, index: int) -> Listener:
    """One ``proxy_listen`` entry, ``address:port [flags…]``."""
    words = entry.split()
    if not words:
        raise ValueError("empty listener")
    address, port = _parse_address(words[0])
    protocol: Literal["http", "https"] = "http"
    reuse_port = True
    backlog = 2048
    for flag in words[1:]:
        if flag == "ssl":
            protocol = "https"
        elif flag == "reuseport":
            reuse_port = True
        elif flag.startswith("backlog="):
            value = flag.removeprefix("backlog=")
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"invalid backlog '{value}'")
            backlog = int(value)
        elif flag in _IGNORED_FLAGS or flag.startswith(_IGNORED_FLAG_PREFIXES):
            continue
        else:
            raise ValueError(f"unknown flag '{flag}'")
    return Listener(
        name=f"proxy-{protocol}-{index}",
        address=address,
        port=port,
        protocol=protocol,
        reuse_port=reuse_port,
        backlog=backlog,
    )


def parse_proxy_listen(text: str) -> tuple[Listener, ...]:
    """A Kong ``proxy_listen`` value as listeners; ``off`` means none.

    Raises ``ConfigError`` listing every bad entry as ``proxy_listen[i]``.
    """
    if text.strip() == "off":
        return ()
    listeners: list[Listener] = []
    violations: list[Violation] = []
    for index, entry in enumerate(text.split(",")):
        try:
            listeners.append(parse_listener(entry.strip(), index))
        except ValueError as exc:
            violations.append(Violation(f"proxy_listen[{index}]", str(exc)))
    if violations:
        raise ConfigError(violations)
    return tuple(listeners)


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """Per-node settings: listeners, upstream TLS verification default, default certificate."""

    listeners: tuple[Listener, ...] = parse_proxy_listen(DEFAULT_PROXY_LISTEN)
    # Kong's ``proxy_ssl_verify`` (off by default): used for services with ``tls_verify`` unset.
    tls_verify_default: bool = False
    # A ``Certificate`` id served by https listeners when no SNI matches (None: no default).
    default_certificate: str | None = None

    @classmethod
    def from_proxy_listen(
        cls,
        proxy_listen: str = DEFAULT_PROXY_LISTEN,
        *,
        tls_verify_default: bool = False,
        default_certificate: str | None = None,
    ) -> NodeSettings:
        return cls(parse_proxy_listen(proxy_listen), tls_verify_default, default_certificate)
