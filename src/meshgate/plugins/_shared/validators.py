"""Kong's ``typedefs`` checks the log and tracing plugins share (messages as Kong's)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

_HEADER_NAME = re.compile(r"[a-zA-Z0-9\-_]+\Z")
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?)+\Z")
LUA_UNSUPPORTED = "custom_fields_by_lua is not supported by meshgate (no Lua sandbox)"


def check_url(url: str) -> str:
    """``typedefs.url``: a parsable URL with a scheme and a host (here: http or https)."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"could not parse url. {exc}") from None
    if not parts.hostname:
        raise ValueError("missing host in url")
    if not parts.scheme:
        raise ValueError("missing scheme in url")
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported scheme '{parts.scheme}' in url (http or https)")
    return url


def check_header_name(name: str) -> str:
    if not name:
        raise ValueError("no header name provided")
    if not _HEADER_NAME.match(name):
        raise ValueError(
            f"bad header name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        )
    return name


def check_host(host: str) -> str:
    """``typedefs.host``: an IP address or host name, without a port."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
        return host
    except ValueError:
        pass
    if ":" in host:
        name, _, port = host.rpartition(":")
        if port.isdigit() and _HOSTNAME.match(name):
            raise ValueError("must not have a port")
    if not _HOSTNAME.match(host):
        raise ValueError(f"invalid value: {host}")
    return host


def refuse_lua(value: Any) -> Any:
    if value:
        raise ValueError(LUA_UNSUPPORTED)
    return value
