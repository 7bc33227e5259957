"""Shared pieces of the Kong entity models: base class, field types, validators, stable ids.

The validators follow Kong's typedefs (names, hosts, wildcard hosts, SNIs, paths, tags) so a
file Kong accepts is accepted here and a file Kong rejects is rejected with a comparable
message.  Cross-field rules of one entity are reported through :class:`EntityViolations`, which
carries one ``(location, message)`` pair per broken rule so every one of them can be shown
with its own field path.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

# Namespace of the ids meshgate derives for entities that a declarative file leaves without one.
KONG_ID_NAMESPACE = uuid.UUID("6f1e3c2a-8d4b-5e7f-9a0b-1c2d3e4f5a6b")

Loc = tuple[str | int, ...]


class EntityViolations(ValueError):
    """Several cross-field violations of one entity, each with its location inside it."""

    def __init__(self, items: Sequence[tuple[Loc, str]]) -> None:
        self.items = list(items)
        super().__init__("; ".join(_loc_text(loc, msg) for loc, msg in self.items))


def _loc_text(loc: Loc, message: str) -> str:
    path = ".".join(str(part) for part in loc)
    return f"{path}: {message}" if path else message


class KongEntity(BaseModel):
    """Base of every Kong entity model: immutable, unknown fields rejected as Kong does."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def stable_id(kind: str, key: str) -> str:
    """A deterministic UUID for an entity of ``kind`` identified by ``key`` (uuid5)."""
    return str(uuid.uuid5(KONG_ID_NAMESPACE, f"{kind}:{key}"))


# --------------------------------------------------------------------------- scalar checks


def check_uuid(value: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise ValueError("expected a valid UUID") from None
    return str(parsed)


_NAME_ASCII_OK = re.compile(r"[A-Za-z0-9.\-_~]")


def check_utf8_name(value: str) -> str:
    """Kong's ``utf8_name``: non-ASCII letters allowed; ASCII limited to alnum and ``.-_~``."""
    if not value:
        raise ValueError("length must be at least 1")
    for char in value:
        if char.isascii() and not _NAME_ASCII_OK.fullmatch(char):
            raise ValueError(
                f"invalid value '{value}': the only accepted ascii characters are "
                "alphanumerics or ., -, _, and ~"
            )
    return value


def check_tag(value: str) -> str:
    if not value or any(c in ",/" or (c.isascii() and not c.isprintable()) for c in value):
        raise ValueError(
            f"invalid tag '{value}': expected printable ascii (except `,` and `/`) "
            "or valid utf-8 sequences"
        )
    return value


_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_hostname(value: str) -> bool:
    """RFC 1123 host name (underscores tolerated, as internal DNS often uses them)."""
    if not value or len(value) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in value.split("."))


def _has_port(value: str) -> bool:
    if value.startswith("["):
        return "]:" in value
    return value.count(":") == 1


def check_host(value: str) -> str:
    """A host name or an IP address, without a port (Kong's ``host`` typedef)."""
    if is_ip(value) or is_hostname(value):
        return value
    if _has_port(value):
        raise ValueError("must not have a port")
    raise ValueError(f"invalid value: {value}")


def check_hostname(value: str) -> str:
    """A host name, neither an IP address nor with a port (Kong's upstream ``name``)."""
    if is_ip(value):
        raise ValueError("Invalid name; no ip addresses allowed")
    if _has_port(value):
        raise ValueError("Invalid name; no port allowed")
    if not is_hostname(value):
        raise ValueError(f"Invalid name ('{value}'); must be a valid hostname")
    return value


def check_wildcard_name(value: str) -> str:
    """A host name that may carry one ``*`` as its whole leftmost or rightmost label."""
    stars = value.count("*")
    if stars == 0:
        if not is_hostname(value):
            raise ValueError(f"invalid value: {value}")
        return value
    if stars > 1:
        raise ValueError("invalid wildcard: must have at most one wildcard")
    if value.startswith("*."):
        rest = value[2:]
    elif value.endswith(".*"):
        rest = value[:-2]
    else:
        raise ValueError("invalid wildcard: must be placed at leftmost or rightmost label")
    if not is_hostname(rest):
        raise ValueError(f"invalid value: {value}")
    return value


def check_sni(value: str) -> str:
    """An SNI name: a (wildcard) host name, never an IP, never with a port."""
    if is_ip(value):
        raise ValueError("must not be an IP")
    if _has_port(value) and "*" not in value.rsplit(":", 1)[1]:
        raise ValueError("must not have a port")
    return check_wildcard_name(value)


def check_route_host(value: str) -> str:
    """A route ``hosts`` entry: (wildcard) host name or IP, with an optional ``:port``."""
    host, port = value, None
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise ValueError(f"invalid value: {value}")
        host, rest = value[1:close], value[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"invalid value: {value}")
            port = rest[1:]
        if not is_ip(host):
            raise ValueError(f"invalid value: {value}")
    elif value.count(":") == 1:
        host, port = value.split(":")
    if port is not None and not (port.isdigit() and 0 < int(port) <= 65535):
        raise ValueError(f"invalid port number: {value}")
    if is_ip(host):
        return value
    check_wildcard_name(host)
    return value


_PATH_CHARS = re.compile(r"/[A-Za-z0-9.\-_~/%!$&'()*+,;=:@]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def check_service_path(value: str) -> str:
    """Kong's ``path`` typedef: starts with ``/``, RFC 3986 characters, valid %-escapes."""
    if not value.startswith("/"):
        raise ValueError("should start with: /")
    if "//" in value:
        raise ValueError("must not have empty segments")
    if not _PATH_CHARS.fullmatch(value):
        raise ValueError(
            f"invalid path: '{value}' (characters outside of the reserved list of RFC 3986 found)"
        )
    bad = _BAD_PERCENT.search(value)
    if bad:
        raise ValueError(f"invalid url-encoded value: '{value[bad.start() : bad.start() + 3]}'")
    return value


def foreign_key(value: Any) -> Any:
    """Accept ``"name-or-id"``, ``{"id": ...}`` or ``{"name": ...}`` for a reference."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), *_ = value.items()
        if key in ("id", "name", "username") and isinstance(inner, str):
            return inner
    return value


# --------------------------------------------------------------------------- annotated types

UUIDStr = Annotated[str, AfterValidator(check_uuid)]
Utf8Name = Annotated[str, AfterValidator(check_utf8_name)]
Tag = Annotated[str, AfterValidator(check_tag)]
Host = Annotated[str, AfterValidator(check_host)]
HostName = Annotated[str, AfterValidator(check_hostname)]
SniName = Annotated[str, AfterValidator(check_sni)]
RouteHost = Annotated[str, AfterValidator(check_route_host)]
ServicePath = Annotated[str, AfterValidator(check_service_path)]
Port = Annotated[int, Field(ge=0, le=65535)]
Timestamp = Annotated[int, Field(ge=0)]
ForeignKey = Annotated[str, BeforeValidator(foreign_key)]
Tags = tuple[Tag, ...]
