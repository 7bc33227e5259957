"""Kong Service and Route models: defaults, url shorthand, every route validation rule."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from meshgate.resources.kong import Route, Service
from meshgate.resources.violations import violations_from


def problems(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    """``{path: message}`` of every violation; {} when valid."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return {v.path: v.message for v in violations_from(exc, "")}
    return {}


# --------------------------------------------------------------------------- service


def test_service_defaults_are_kongs() -> None:
    service = Service(host="example.com")
    assert (service.protocol, service.port, service.path, service.retries) == ("http", 80, None, 5)
    assert (service.connect_timeout, service.write_timeout, service.read_timeout) == (60000,) * 3
    assert service.enabled is True
    assert service.tls_verify is None


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.example.com", ("https", "api.example.com", 443, None)),
        ("http://api.example.com", ("http", "api.example.com", 80, None)),
        ("https://api.example.com:8443/v1/x", ("https", "api.example.com", 8443, "/v1/x")),
        ("http://10.0.0.1:9000/", ("http", "10.0.0.1", 9000, "/")),
        ("grpc://grpc.local:50051", ("grpc", "grpc.local", 50051, None)),
        ("http://[::1]:8080", ("http", "::1", 8080, None)),
    ],
)
def test_service_url_shorthand(url: str, expected: tuple[Any, ...]) -> None:
    service = Service.model_validate({"url": url})
    assert (service.protocol, service.host, service.port, service.path) == expected


def test_service_url_overrides_individual_fields() -> None:
    service = Service.model_validate({"url": "https://b.example.com", "host": "a", "port": 1})
    assert (service.host, service.port, service.protocol) == ("b.example.com", 443, "https")


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"url": "example.com"}, "url", "missing scheme"),
        ({"url": "http://"}, "url", "missing host"),
        ({"url": "http://x.com:99999"}, "url", "could not parse"),
        ({"url": "ftp://x.com"}, "protocol", "Input should be"),
        ({}, "host", "required field missing"),
        ({"host": "a.com:80"}, "host", "must not have a port"),
        ({"host": "bad host"}, "host", "invalid value"),
        ({"host": "a.com", "port": 70000}, "port", "less than or equal"),
        ({"host": "a.com", "retries": 40000}, "retries", "less than or equal"),
        ({"host": "a.com", "connect_timeout": 0}, "connect_timeout", "greater than or equal"),
        ({"host": "a.com", "path": "v1"}, "path", "should start with: /"),
        ({"host": "a.com", "path": "/a//b"}, "path", "empty segments"),
        ({"host": "a.com", "path": "/a b"}, "path", "RFC 3986"),
        ({"host": "a.com", "path": "/a%zz"}, "path", "url-encoded"),
        ({"host": "a.com", "protocol": "tcp", "path": "/a"}, "path", "must be null"),
        ({"host": "a.com", "protocol": "grpc", "path": "/a"}, "path", "must be null"),
        ({"host": "a.com", "tls_verify": True}, "tls_verify", "must be null"),
        ({"host": "a.com", "name": "a b"}, "name", "only accepted ascii"),
        ({"host": "a.com", "tags": ["a,b"]}, "tags[0]", "invalid tag"),
        ({"host": "a.com", "bogus": 1}, "bogus", "unknown field"),
        ({"host": "a.com", "id": "not-a-uuid"}, "id", "valid UUID"),
    ],
)
def test_service_rejections(data: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(Service, data)
    assert path in found, found
    assert fragment in found[path]


def test_service_accepts_tls_fields_for_https_and_utf8_names() -> None:
    data = {"url": "https://a.com", "tls_verify": True, "tls_verify_depth": 3, "name": "café~1"}
    assert problems(Service, data) == {}


# --------------------------------------------------------------------------- route


def test_route_defaults_are_kongs() -> None:
    route = Route(paths=("/",))
    assert route.protocols == ("http", "https")
    assert route.https_redirect_status_code == 426
    assert (route.strip_path, route.preserve_host, route.regex_priority) == (True, False, 0)
    assert route.path_handling == "v0"
    assert (route.request_buffering, route.response_buffering) == (True, True)


def test_route_grpc_defaults_strip_path_to_false() -> None:
    route = Route.model_validate({"protocols": ["grpc"], "paths": ["/svc"]})
    assert route.strip_path is False


def test_route_protocols_behave_as_a_set() -> None:
    route = Route.model_validate({"protocols": ["https", "https"], "paths": ["/"]})
    assert route.protocols == ("https",)


def test_route_accepts_pcre_named_groups_and_header_forms() -> None:
    data = {
        "paths": ["~/users/(?<id>\\d+)$", "/plain"],
        "headers": {"X-Version": "v1", "x-env": ["a", "~*^b\\d$"]},
        "hosts": ["*.example.com", "example.*", "api.example.com:8080", "10.0.0.1", "[::1]:80"],
    }
    route = Route.model_validate(data)
    assert route.headers["X-Version"] == ("v1",)


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (
            {},
            "",
            "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'",
        ),
        (
            {"protocols": ["http"]},
            "",
            "must set one of 'methods', 'hosts', 'headers', 'paths' when",
        ),
        ({"paths": ["api"]}, "paths[0]", "should start with: / (fixed path) or ~/ (regex path)"),
        ({"paths": ["/ok", "~(unclosed"]}, "paths[1]", "should start with"),
        ({"paths": ["/ok", "~/(unclosed"]}, "paths[1]", "invalid regex"),
        ({"hosts": ["*.*.example.com"]}, "hosts[0]", "at most one wildcard"),
        ({"hosts": ["api.*.com"]}, "hosts[0]", "leftmost or rightmost"),
        ({"hosts": ["exa*mple.com"]}, "hosts[0]", "leftmost or rightmost"),
        ({"hosts": ["a.com:0"]}, "hosts[0]", "invalid port"),
        ({"headers": {"Host": ["a.com"]}}, "headers.Host", "must be specified in the 'hosts'"),
        ({"headers": {"hOsT": ["a.com"]}}, "headers.hOsT", "'hosts' attribute"),
        ({"headers": {"x-a": []}}, "headers.x-a", "at least 1"),
        ({"headers": {"x-a": ["~*("]}}, "headers.x-a[0]", "invalid regex"),
        ({"methods": ["get"]}, "methods[0]", "upper-case"),
        ({"protocols": ["http"], "paths": ["/"], "snis": ["a.com"]}, "snis", "can only be set"),
        ({"protocols": ["http", "tcp"], "paths": ["/"]}, "protocols", "mutually exclusive"),
        ({"protocols": ["grpc", "https"], "paths": ["/"]}, "protocols", "mutually exclusive"),
        ({"protocols": []}, "protocols", "at least 1"),
        ({"protocols": ["ws"]}, "protocols[0]", "Input should be"),
        (
            {"protocols": ["grpc"], "paths": ["/"], "strip_path": True},
            "strip_path",
            "cannot set 'strip_path'",
        ),
        (
            {"protocols": ["grpc"], "paths": ["/"], "methods": ["GET"]},
            "methods",
            "cannot set 'methods'",
        ),
        (
            {"protocols": ["grpc"]},
            "",
            "must set one of 'hosts', 'headers', 'paths' when 'protocols' is 'grpc'",
        ),
        ({"protocols": ["tcp"]}, "", "must set one of 'sources', 'destinations', 'snis'"),
        (
            {"protocols": ["tcp"], "sources": [{"ip": "10.0.0.0/8"}], "paths": ["/"]},
            "paths",
            "cannot set 'paths'",
        ),
        ({"protocols": ["tls_passthrough"]}, "", "must set snis"),
        ({"protocols": ["tcp"], "sources": [{}]}, "sources[0]", "at least one of"),
        ({"protocols": ["tcp"], "sources": [{"ip": "300.1.1.1"}]}, "sources[0].ip", "invalid ip"),
        ({"paths": ["/"], "sources": [{"port": 80}]}, "sources", "cannot set 'sources'"),
        (
            {"paths": ["/"], "https_redirect_status_code": 303},
            "https_redirect_status_code",
            "Input should be",
        ),
        ({"paths": ["/"], "path_handling": "v2"}, "path_handling", "Input should be"),
        ({"snis": ["10.0.0.1"]}, "snis[0]", "must not be an IP"),
        ({"paths": ["/"], "expression": "x"}, "expression", "unknown field"),
    ],
)
def test_route_rejections(data: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(Route, data)
    assert path in found, found
    assert fragment in found[path], found[path]


def test_route_reports_every_cross_field_problem() -> None:
    found = problems(Route, {"protocols": ["grpc"], "methods": ["GET"], "strip_path": True})
    assert set(found) == {"methods", "strip_path", ""}


@pytest.mark.parametrize(
    "data",
    [
        {"protocols": ["https"], "snis": ["a.example.com"]},
        {"protocols": ["grpcs"], "snis": ["*.example.com"]},
        {"protocols": ["tls"], "snis": ["a.com"]},
        {"protocols": ["tls_passthrough"], "snis": ["a.com"]},
        {"protocols": ["tcp", "udp"], "destinations": [{"ip": "10.0.0.1", "port": 53}]},
        {"protocols": ["http"], "methods": ["GET", "PURGE"]},
        {"headers": {"x-a": "b"}},
    ],
)
def test_route_valid_shapes(data: dict[str, Any]) -> None:
    assert problems(Route, data) == {}
