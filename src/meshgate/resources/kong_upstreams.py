"""Kong ``Upstream`` (with its ``healthchecks`` record) and ``Target`` entities.

Field names, ranges and defaults are Kong's; the healthchecks record mirrors
``meshgate.snapshot.Healthchecks`` field for field so the compiler copies it as is.  A target
is ``host[:port]`` (IPv6 as ``[addr]:port``) and is stored normalised with Kong's default port
8000 made explicit.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from meshgate.resources.kong_common import (
    EntityViolations,
    ForeignKey,
    Host,
    HostName,
    KongEntity,
    Loc,
    ServicePath,
    SniName,
    Tags,
    Timestamp,
    UUIDStr,
    is_hostname,
)
from meshgate.resources.kong_services import HeaderName, HeaderValues

Algorithm = Literal["round-robin", "consistent-hashing", "least-connections", "latency"]
HashOn = Literal["none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"]
CheckType = Literal["tcp", "http", "https", "grpc", "grpcs"]

StatusCode = Annotated[int, Field(ge=100, le=999)]
Statuses = tuple[StatusCode, ...]
Counter = Annotated[int, Field(ge=0, le=255)]
Seconds = Annotated[float, Field(ge=0, le=65535)]
DEFAULT_TARGET_PORT = 8000


# --------------------------------------------------------------------------- healthchecks


class ActiveHealthy(KongEntity):
    interval: Seconds = 0
    http_statuses: Statuses = (200, 302)
    successes: Counter = 0


class ActiveUnhealthy(KongEntity):
    interval: Seconds = 0
    http_statuses: Statuses = (429, 404, 500, 501, 502, 503, 504, 505)
    tcp_failures: Counter = 0
    timeouts: Counter = 0
    http_failures: Counter = 0


def _none_to_empty_map(value: Any) -> Any:
    return {} if value is None else value


class ActiveHealthcheck(KongEntity):
    type: CheckType = "http"
    timeout: Seconds = 1
    concurrency: int = Field(default=10, ge=1, le=2**31 - 1)
    http_path: ServicePath = "/"
    https_sni: SniName | None = None
    https_verify_certificate: bool = True
    headers: Annotated[dict[HeaderName, HeaderValues], BeforeValidator(_none_to_empty_map)] = Field(
        default_factory=dict
    )
    healthy: ActiveHealthy = ActiveHealthy()
    unhealthy: ActiveUnhealthy = ActiveUnhealthy()


class PassiveHealthy(KongEntity):
    http_statuses: Statuses = (
        200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
    )  # fmt: skip
    successes: Counter = 0


class PassiveUnhealthy(KongEntity):
    http_statuses: Statuses = (429, 500, 503)
    tcp_failures: Counter = 0
    timeouts: Counter = 0
    http_failures: Counter = 0


class PassiveHealthcheck(KongEntity):
    type: CheckType = "http"
    healthy: PassiveHealthy = PassiveHealthy()
    unhealthy: PassiveUnhealthy = PassiveUnhealthy()
    # meshgate extension (not in Kong): seconds after which a passively-tripped target is
    # tried again; 0 = never, Kong's behaviour.
    recovery_after: Seconds = 0


class Healthchecks(KongEntity):
    active: ActiveHealthcheck = ActiveHealthcheck()
    passive: PassiveHealthcheck = PassiveHealthcheck()
    threshold: float = Field(default=0, ge=0, le=100)


# --------------------------------------------------------------------------- upstream

# hash_on value -> the field naming what to hash (for hash_on and for hash_fallback)
_HASH_ON_FIELD = {
    "header": "hash_on_header",
    "cookie": "hash_on_cookie",
    "query_arg": "hash_on_query_arg",
    "uri_capture": "hash_on_uri_capture",
}
_HASH_FALLBACK_FIELD = {
    "header": "hash_fallback_header",
    "cookie": "hash_on_cookie",
    "query_arg": "hash_fallback_query_arg",
    "uri_capture": "hash_fallback_uri_capture",
}
_NAMED_HASH_INPUTS = ("header", "query_arg", "uri_capture")


class Upstream(KongEntity):
    """A virtual host name (matched against ``Service.host``) balancing over its targets."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    name: HostName
    algorithm: Algorithm = "round-robin"
    hash_on: HashOn = "none"
    hash_fallback: HashOn = "none"
    hash_on_header: HeaderName | None = None
    hash_fallback_header: HeaderName | None = None
    hash_on_cookie: str | None = None
    hash_on_cookie_path: ServicePath = "/"
    hash_on_query_arg: str | None = Field(default=None, min_length=1)
    hash_fallback_query_arg: str | None = Field(default=None, min_length=1)
    hash_on_uri_capture: str | None = Field(default=None, min_length=1)
    hash_fallback_uri_capture: str | None = Field(default=None, min_length=1)
    slots: int = Field(default=10000, ge=10, le=2**16)
    healthchecks: Healthchecks = Healthchecks()
    host_header: Host | None = None
    client_certificate: ForeignKey | None = None
    use_srv_name: bool = False
    tags: Tags = ()

    @model_validator(mode="before")
    @classmethod
    def _couple_algorithm_and_hash(cls, data: Any) -> Any:
        # Kong: least-connections / latency ignore hashing; hashing implies consistent-hashing.
        if not isinstance(data, dict):
            return data
        algorithm = data.get("algorithm")
        if algorithm in ("least-connections", "latency"):
            return {**data, "hash_on": "none", "hash_fallback": "none"}
        if data.get("hash_on") not in (None, "none") and algorithm in (None, "round-robin"):
            return {**data, "algorithm": "consistent-hashing"}
        return data

    @model_validator(mode="after")
    def _check_hashing(self) -> Upstream:
        problems: list[tuple[Loc, str]] = []
        for kind, table in (("hash_on", _HASH_ON_FIELD), ("hash_fallback", _HASH_FALLBACK_FIELD)):
            value = getattr(self, kind)
            field = table.get(value)
            if field is not None and getattr(self, field) is None:
                problems.append(((field,), f"required field missing when '{kind}' is '{value}'"))
        if self.hash_on in ("none", "cookie") and self.hash_fallback != "none":
            problems.append(
                (("hash_fallback",), f"must be 'none' when 'hash_on' is '{self.hash_on}'")
            )
        elif self.hash_fallback != "none" and self.hash_fallback == self.hash_on:
            if self.hash_on not in _NAMED_HASH_INPUTS:
                problems.append((("hash_fallback",), "must be different from 'hash_on'"))
            else:
                on, fallback = _HASH_ON_FIELD[self.hash_on], _HASH_FALLBACK_FIELD[self.hash_on]
                first, second = getattr(self, on), getattr(self, fallback)
                if first is not None and (first.lower() if self.hash_on == "header" else first) == (
                    second.lower() if self.hash_on == "header" and second else second
                ):
                    problems.append(((fallback,), f"must be different from '{on}'"))
        if problems:
            raise EntityViolations(problems)
        return self


# --------------------------------------------------------------------------- target


def parse_target(value: str) -> tuple[str, int]:
    """``host[:port]`` / ``ip[:port]`` / ``[ipv6][:port]`` / bare IPv6 → (host, port)."""
    port_text: str | None = None
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise ValueError(f"Invalid target ('{value}'); not a valid hostname or ip address")
        host, rest = value[1:close], value[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"Invalid target ('{value}'); not a valid hostname or ip address")
            port_text = rest[1:]
        if not _is_ipv6(host):
            raise ValueError(f"Invalid target ('{value}'); not a valid hostname or ip address")
    elif value.count(":") > 1:
        host = value
        if not _is_ipv6(host):
            raise ValueError(f"Invalid target ('{value}'); not a valid hostname or ip address")
    else:
        host, _, port_text = value.partition(":")
        port_text = port_text if ":" in value else None
        if not (_is_ipv4(host) or is_hostname(host)):
            raise ValueError(f"Invalid target ('{value}'); not a valid hostname or ip address")
    if port_text is None:
        return host, DEFAULT_TARGET_PORT
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"Invalid target ('{value}'); not a valid port number")
    return host, int(port_text)


def format_target(host: str, port: int) -> str:
    if _is_ipv6(host):
        return f"[{ipaddress.IPv6Address(host).compressed}]:{port}"
    return f"{host}:{port}"


def _is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def normalize_target(value: str) -> str:
    return format_target(*parse_target(value))


TargetText = Annotated[str, AfterValidator(normalize_target)]


class Target(KongEntity):
    """One balanced address of an upstream; ``target`` is stored as ``host:port``."""

    id: UUIDStr | None = None
    # Kong keeps target timestamps with millisecond precision (seconds as a float).
    created_at: float | None = Field(default=None, ge=0)
    updated_at: float | None = Field(default=None, ge=0)
    upstream: ForeignKey | None = None
    target: TargetText
    weight: int = Field(default=100, ge=0, le=65535)
    tags: Tags = ()

    @property
    def host(self) -> str:
        return parse_target(self.target)[0]

    @property
    def port(self) -> int:
        return parse_target(self.target)[1]
