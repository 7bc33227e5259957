"""Kong ``Service`` and ``Route`` entities: fields, defaults and validation rules as Kong's.

``Service`` accepts Kong's ``url`` shorthand (``https://host:port/path`` → protocol, host,
port, path).  ``Route`` carries the classic (``traditional_compatible``) router fields and
Kong's per-protocol rules: which matchers a route needs, which ones a protocol forbids.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from meshgate.resources.kong_common import (
    EntityViolations,
    ForeignKey,
    Host,
    KongEntity,
    Loc,
    Port,
    RouteHost,
    ServicePath,
    SniName,
    Tags,
    Timestamp,
    Utf8Name,
    UUIDStr,
    is_ip,
)

Protocol = Literal["http", "https", "grpc", "grpcs", "tcp", "tls", "tls_passthrough", "udp"]
PROTOCOL_ORDER: tuple[Protocol, ...] = (
    "http", "https", "grpc", "grpcs", "tcp", "tls", "tls_passthrough", "udp",
)  # fmt: skip
HTTP_FAMILY = frozenset({"http", "https"})
GRPC_FAMILY = frozenset({"grpc", "grpcs"})
STREAM_FAMILY = frozenset({"tcp", "tls", "udp", "tls_passthrough"})
_EXCLUSIVE_SUBSETS = (
    ("http", "https"),
    ("tcp", "tls", "udp"),
    ("tls_passthrough",),
    ("grpc", "grpcs"),
)
_TLS_UPSTREAM = frozenset({"https", "grpcs", "tls"})
_NO_PATH_PROTOCOLS = frozenset({"tcp", "tls", "tls_passthrough", "udp", "grpc", "grpcs"})

Timeout = Annotated[int, Field(ge=1, le=2**31 - 2)]


# --------------------------------------------------------------------------- service


def _url_shorthand(url: Any) -> dict[str, Any]:
    """Kong's ``url`` shorthand, with Kong's port/protocol defaults."""
    if not isinstance(url, str):
        raise EntityViolations([(("url",), "expected a string")])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EntityViolations([(("url",), f"could not parse url: {exc}")]) from None
    if not parts.scheme or "://" not in url:
        raise EntityViolations([(("url",), "missing scheme in url")])
    if not parts.hostname:
        raise EntityViolations([(("url",), "missing host in url")])
    protocol = parts.scheme.lower()
    if port is None:
        port = 443 if protocol == "https" else 80
    host = parts.hostname
    if ":" in host and not is_ip(host):
        raise EntityViolations([(("url",), f"invalid host in url: {host}")])
    return {"protocol": protocol, "host": host, "port": port, "path": parts.path or None}


class Service(KongEntity):
    """Where matched traffic goes: ``protocol://host:port/path`` plus timeouts, retries, TLS."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    name: Utf8Name | None = None
    protocol: Protocol = "http"
    host: Host
    port: Port = 80
    path: ServicePath | None = None
    retries: int = Field(default=5, ge=0, le=32767)
    connect_timeout: Timeout = 60000
    write_timeout: Timeout = 60000
    read_timeout: Timeout = 60000
    client_certificate: ForeignKey | None = None
    tls_verify: bool | None = None
    tls_verify_depth: int | None = Field(default=None, ge=0, le=64)
    ca_certificates: tuple[UUIDStr, ...] | None = None
    enabled: bool = True
    tags: Tags = ()

    @model_validator(mode="before")
    @classmethod
    def _expand_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            data = {k: v for k, v in data.items() if k != "url"} | _url_shorthand(data["url"])
        return data

    @model_validator(mode="after")
    def _check_protocol_fields(self) -> Service:
        problems: list[tuple[Loc, str]] = []
        if self.protocol in _NO_PATH_PROTOCOLS and self.path is not None:
            problems.append((("path",), f"value must be null when 'protocol' is '{self.protocol}'"))
        if self.protocol not in _TLS_UPSTREAM:
            for field in (
                "client_certificate",
                "tls_verify",
                "tls_verify_depth",
                "ca_certificates",
            ):
                if getattr(self, field) is not None:
                    problems.append(
                        (
                            (field,),
                            "value must be null unless 'protocol' is 'https', 'grpcs' or 'tls'",
                        )
                    )
        if problems:
            raise EntityViolations(problems)
        return self


# --------------------------------------------------------------------------- route


def _none_to_empty(value: Any) -> Any:
    return () if value is None else value


def _none_to_empty_map(value: Any) -> Any:
    return {} if value is None else value


def _dedupe(value: Any) -> Any:
    """Kong stores these as sets: drop repeated entries, keep first-seen order."""
    if isinstance(value, list | tuple):
        return tuple(dict.fromkeys(value))
    return _none_to_empty(value)


def to_python_regex(kong_regex: str) -> str:
    """PCRE-style named groups ``(?<name>…)`` as Python's ``(?P<name>…)``."""
    return re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", kong_regex)


def _check_router_path(value: str) -> str:
    if value.startswith("~"):
        if not value.startswith("~/"):
            raise ValueError("should start with: / (fixed path) or ~/ (regex path)")
        try:
            re.compile(to_python_regex(value[1:]))
        except re.error as exc:
            raise ValueError(f"invalid regex: '{value[1:]}' ({exc})") from None
        return value
    if not value.startswith("/"):
        raise ValueError("should start with: / (fixed path) or ~/ (regex path)")
    return value


_METHOD = re.compile(r"[A-Z]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")


def _check_method(value: str) -> str:
    if not _METHOD.fullmatch(value):
        raise ValueError(f"invalid value: {value} (methods must be upper-case letters)")
    return value


def _check_header_name(value: str) -> str:
    if value.lower() == "host":
        raise ValueError(
            "cannot contain 'host' header, which must be specified in the 'hosts' attribute"
        )
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError(
            f"bad header name '{value}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        )
    return value


def _header_values(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def _check_header_value(value: str) -> str:
    if value.startswith("~*"):
        try:
            re.compile(to_python_regex(value[2:]))
        except re.error as exc:
            raise ValueError(f"invalid regex: '{value[2:]}' ({exc})") from None
    return value


def _check_cidr(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"invalid ip or cidr range: '{value}'") from None
    return value


RouterPath = Annotated[str, AfterValidator(_check_router_path)]
Method = Annotated[str, AfterValidator(_check_method)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
HeaderValue = Annotated[str, AfterValidator(_check_header_value)]
HeaderValues = Annotated[
    tuple[HeaderValue, ...], BeforeValidator(_header_values), Field(min_length=1)
]
Cidr = Annotated[str, AfterValidator(_check_cidr)]


class CidrPort(KongEntity):
    """A stream-route ``sources``/``destinations`` entry: an IP/CIDR and/or a port."""

    ip: Cidr | None = None
    port: Port | None = None

    @model_validator(mode="after")
    def _one_set(self) -> CidrPort:
        if self.ip is None and self.port is None:
            raise ValueError("at least one of these fields must be non-empty: 'ip', 'port'")
        return self


Methods = Annotated[tuple[Method, ...], BeforeValidator(_dedupe)]
RouteHosts = Annotated[tuple[RouteHost, ...], BeforeValidator(_dedupe)]
RouterPaths = Annotated[tuple[RouterPath, ...], BeforeValidator(_dedupe)]
SniNames = Annotated[tuple[SniName, ...], BeforeValidator(_dedupe)]
CidrPorts = Annotated[tuple[CidrPort, ...], BeforeValidator(_none_to_empty)]


class Route(KongEntity):
    """A classic Kong route: matchers (all must match; any value of one matcher does)."""

    id: UUIDStr | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    name: Utf8Name | None = None
    protocols: Annotated[tuple[Protocol, ...], BeforeValidator(_dedupe), Field(min_length=1)] = (
        "http",
        "https",
    )
    methods: Methods = ()
    hosts: RouteHosts = ()
    paths: RouterPaths = ()
    headers: Annotated[dict[HeaderName, HeaderValues], BeforeValidator(_none_to_empty_map)] = Field(
        default_factory=dict
    )
    snis: SniNames = ()
    sources: CidrPorts = ()
    destinations: CidrPorts = ()
    https_redirect_status_code: Literal[426, 301, 302, 307, 308] = 426
    regex_priority: int = 0
    strip_path: bool = True
    preserve_host: bool = False
    path_handling: Literal["v0", "v1"] = "v0"
    request_buffering: bool = True
    response_buffering: bool = True
    service: ForeignKey | None = None
    tags: Tags = ()

    @model_validator(mode="before")
    @classmethod
    def _grpc_strip_path_default(cls, data: Any) -> Any:
        # Kong's grpc subschema defaults ``strip_path`` to false (and forbids true).
        if isinstance(data, dict) and "strip_path" not in data:
            protocols = data.get("protocols")
            if isinstance(protocols, list | tuple) and protocols and protocols[0] in GRPC_FAMILY:
                data = {**data, "strip_path": False}
        return data

    @model_validator(mode="after")
    def _check_matchers(self) -> Route:
        problems = _exclusive_subset_problems(self.protocols)
        if not problems:
            family = set(self.protocols)
            if family <= HTTP_FAMILY:
                problems += _http_rules(self)
            elif family <= GRPC_FAMILY:
                problems += _grpc_rules(self)
            else:
                problems += _stream_rules(self)
        if self.snis and not set(self.protocols) & {"https", "grpcs", "tls", "tls_passthrough"}:
            problems.append(
                (
                    ("snis",),
                    "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' "
                    "or 'tls_passthrough'",
                )
            )
        if problems:
            raise EntityViolations(problems)
        return self


def _exclusive_subset_problems(protocols: tuple[str, ...]) -> list[tuple[Loc, str]]:
    touched = [subset for subset in _EXCLUSIVE_SUBSETS if set(subset) & set(protocols)]
    if len(touched) <= 1:
        return []
    listed = ", ".join(
        "(" + ", ".join(f"'{p}'" for p in subset) + ")" for subset in _EXCLUSIVE_SUBSETS
    )
    return [(("protocols",), f"these sets are mutually exclusive: {listed}")]


def _forbid(route: Route, fields: tuple[str, ...], when: str) -> list[tuple[Loc, str]]:
    return [
        ((field,), f"cannot set '{field}' when 'protocols' is {when}")
        for field in fields
        if getattr(route, field)
    ]


def _one_of(fields: tuple[str, ...], when: str) -> str:
    listed = ", ".join(f"'{f}'" for f in fields)
    return f"must set one of {listed} when 'protocols' is '{when}'"


def _http_rules(route: Route) -> list[tuple[Loc, str]]:
    problems = _forbid(route, ("sources", "destinations"), "'http' or 'https'")
    needed: tuple[str, ...] = ("methods", "hosts", "headers", "paths")
    when = "http"
    if "https" in route.protocols:
        needed, when = (*needed, "snis"), "https"
    if not any(getattr(route, field) for field in needed):
        problems.append(((), _one_of(needed, when)))
    return problems


def _grpc_rules(route: Route) -> list[tuple[Loc, str]]:
    problems = _forbid(route, ("methods", "sources", "destinations"), "'grpc' or 'grpcs'")
    if route.strip_path:
        problems.append(
            (("strip_path",), "cannot set 'strip_path' when 'protocols' is 'grpc' or 'grpcs'")
        )
    needed: tuple[str, ...] = ("hosts", "headers", "paths")
    when = "grpc"
    if "grpcs" in route.protocols:
        needed, when = (*needed, "snis"), "grpcs"
    if not any(getattr(route, field) for field in needed):
        problems.append(((), _one_of(needed, when)))
    return problems


def _stream_rules(route: Route) -> list[tuple[Loc, str]]:
    when = "'tcp', 'tls', 'tls_passthrough' or 'udp'"
    problems = _forbid(route, ("methods", "hosts", "paths", "headers"), when)
    if "tls_passthrough" in route.protocols:
        if not route.snis:
            problems.append(((), "must set snis when 'protocols' is 'tls_passthrough'"))
    elif not (route.sources or route.destinations or route.snis):
        problems.append(
            (
                (),
                "must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'",
            )
        )
    return problems
