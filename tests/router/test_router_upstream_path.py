"""``upstream_path``: Kong's join of service.path and the (stripped) request path, v0 and v1."""

from __future__ import annotations

from typing import Literal

import pytest

from meshgate.proxy.router import Router, upstream_path
from meshgate.snapshot import Route


def joined(
    service_path: str | None,
    route_path: str | None,
    request: str,
    strip: bool,
    handling: Literal["v0", "v1"] = "v0",
) -> str:
    paths = (route_path,) if route_path is not None else ()
    route = Route(id="r", paths=paths, hosts=("h",), strip_path=strip, path_handling=handling)
    found = Router.build([(route, None)]).match("GET", "h", request)
    assert found is not None
    return upstream_path(service_path, found)


# The rows of the reference table (gateway-kong.md §2.4); "req" read as "<route path>/req".
@pytest.mark.parametrize(
    ("service_path", "route_path", "request_path", "strip", "handling", "expected"),
    [
        ("/s", "/fv0", "/fv0/req", False, "v0", "/s/fv0/req"),
        ("/s", "/fv0", "/fv0", False, "v0", "/s/fv0"),
        ("/s", "/fv1", "/fv1/req", False, "v1", "/sfv1/req"),
        ("/s", "/tv0", "/tv0/req", True, "v0", "/s/req"),
        ("/s", "/tv0", "/tv0", True, "v0", "/s"),
    ],
)
def test_reference_table(
    service_path: str,
    route_path: str,
    request_path: str,
    strip: bool,
    handling: Literal["v0", "v1"],
    expected: str,
) -> None:
    assert joined(service_path, route_path, request_path, strip, handling) == expected


# Further v0 cases, worked out from Kong's get_upstream_uri_v0 (request = route path + "req").
@pytest.mark.parametrize(
    ("service_path", "route_path", "request_path", "strip", "expected"),
    [
        ("/s", "/fv0", "/fv0req", False, "/s/fv0req"),
        ("/s", "/tv0", "/tv0req", True, "/s/req"),
        ("/s", "/fv0/", "/fv0/", False, "/s/fv0/"),
        ("/s", "/tv0/", "/tv0/req", True, "/s/req"),
        ("/s", "/tv0/", "/tv0/", True, "/s/"),
        ("/s/", "/fv0", "/fv0req", False, "/s/fv0req"),
        ("/s/", "/fv0", "/fv0", False, "/s/fv0"),
        ("/s/", "/fv0/", "/fv0/", False, "/s/fv0/"),
        ("/s/", "/tv0", "/tv0req", True, "/s/req"),
        ("/s/", "/tv0", "/tv0/req", True, "/s/req"),
        ("/s/", "/tv0", "/tv0", True, "/s"),
        ("/s/", "/tv0/", "/tv0/", True, "/s/"),
        (None, "/tv0", "/tv0", True, "/"),
        (None, "/tv0", "/tv0/x", True, "/x"),
        (None, "/tv0", "/tv0x", True, "/x"),
        (None, "/fv0", "/fv0/x", False, "/fv0/x"),
        ("/", "/fv0", "/fv0/x/", False, "/fv0/x/"),
        ("/s", None, "/", True, "/s"),
        ("/s", None, "/a/", True, "/s/a/"),
        ("/s", None, "/a/", False, "/s/a/"),
    ],
)
def test_v0_join(
    service_path: str | None, route_path: str | None, request_path: str, strip: bool, expected: str
) -> None:
    assert joined(service_path, route_path, request_path, strip, "v0") == expected


# v1 treats service.path as a raw prefix (Kong's traditional router v1 branch).
@pytest.mark.parametrize(
    ("service_path", "route_path", "request_path", "strip", "expected"),
    [
        ("/s", "/fv1", "/fv1req", False, "/sfv1req"),
        ("/s", "/fv1", "/fv1", False, "/sfv1"),
        ("/s", "/tv1", "/tv1req", True, "/sreq"),
        ("/s", "/tv1", "/tv1", True, "/s"),
        ("/s", "/tv1", "/tv1/req", True, "/s/req"),
        ("/s", "/fv1/", "/fv1/req", False, "/sfv1/req"),
        ("/s", "/tv1/", "/tv1/req", True, "/sreq"),
        ("/s/", "/fv1", "/fv1req", False, "/s/fv1req"),
        ("/s/", "/tv1", "/tv1/req", True, "/s/req"),
    ],
)
def test_v1_join(
    service_path: str, route_path: str, request_path: str, strip: bool, expected: str
) -> None:
    assert joined(service_path, route_path, request_path, strip, "v1") == expected


def test_regex_strip_then_join() -> None:
    assert joined("/s", r"~/v/\d+", "/v/1/users", True) == "/s/users"
    assert joined("/s", r"~/v/\d+", "/v/1", True) == "/s"


def test_join_uses_the_normalized_request_path() -> None:
    assert joined("/s", "/tv0", "/tv0/a/../b//c", True) == "/s/b/c"
