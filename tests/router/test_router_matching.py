"""Each matching rule of the router on its own: paths, hosts, methods, headers, SNI, protocols."""

from __future__ import annotations

from typing import Any

import pytest

from meshgate.proxy.router import Router, RouterBuildError
from meshgate.snapshot import Route


def route(route_id: str, **fields: Any) -> Route:
    return Route(id=route_id, **fields)


def build(*routes: Route) -> Router[str]:
    return Router.build([(r, r.id) for r in routes])


def matched_id(router: Router[str], method: str, host: str, path: str, **kw: Any) -> str | None:
    found = router.match(method, host, path, **kw)
    naive = router._naive_match(method, host, path, **kw)
    assert (found and found.target) == (naive and naive.target)
    return None if found is None else found.target


# --------------------------------------------------------------------------- paths


def test_plain_prefix_matches_and_longest_prefix_wins() -> None:
    router = build(route("short", paths=("/svc",)), route("long", paths=("/svc/resource",)))
    assert matched_id(router, "GET", "h", "/svc/resource/1") == "long"
    assert matched_id(router, "GET", "h", "/svc/other") == "short"
    assert matched_id(router, "GET", "h", "/other") is None


def test_prefix_is_a_character_prefix_not_a_segment_prefix() -> None:
    router = build(route("svc", paths=("/svc",)))
    found = router.match("GET", "h", "/svcfoo")
    assert found is not None
    assert found.stripped_path == "/foo"


def test_trailing_slash_prefix_does_not_match_the_bare_path() -> None:
    router = build(route("svc", paths=("/svc/",)))
    assert matched_id(router, "GET", "h", "/svc") is None
    assert matched_id(router, "GET", "h", "/svc/") == "svc"


def test_request_path_is_normalized_before_plain_matching() -> None:
    router = build(route("svc", paths=("/svc",)), route("admin", paths=("/admin",)))
    assert matched_id(router, "GET", "h", "/svc/../admin") == "admin"
    assert matched_id(router, "GET", "h", "/%61dmin/x") == "admin"
    assert matched_id(router, "GET", "h", "//svc//x") == "svc"


def test_route_paths_are_normalized_too() -> None:
    router = build(route("tilde", paths=("/%7euser",)), route("cafe", paths=("/caf\u00e9",)))
    assert matched_id(router, "GET", "h", "/~user/x") == "tilde"
    assert matched_id(router, "GET", "h", "/caf%c3%a9") == "cafe"


def test_regex_paths_are_anchored_at_the_start_and_see_the_normalized_path() -> None:
    router = build(route("status", paths=(r"~/status/\d+$",)))
    assert matched_id(router, "GET", "h", "/status/42") == "status"
    assert matched_id(router, "GET", "h", "/x/status/42") is None
    assert matched_id(router, "GET", "h", "/x/../status/42") == "status"
    assert matched_id(router, "GET", "h", "/status/42/more") is None


def test_regex_captures_named_and_numbered() -> None:
    router = build(route("v", paths=(r"~/version/(?<ver>\d+)/(\w+)(/opt)?",)))
    found = router.match("GET", "h", "/version/3/users/x")
    assert found is not None
    assert found.uri_captures == {"1": "3", "2": "users", "ver": "3"}
    assert found.matched_path == r"~/version/(?<ver>\d+)/(\w+)(/opt)?"
    assert found.stripped_path == "/x"


def test_plain_match_has_no_captures_and_reports_its_path() -> None:
    found = build(route("svc", paths=("/a", "/svc"))).match("GET", "h", "/svc/x")
    assert found is not None
    assert found.matched_path == "/svc"
    assert found.uri_captures == {}


@pytest.mark.parametrize("path", ["*", "", "svc", "http://h/svc"])
def test_non_absolute_paths_never_match(path: str) -> None:
    router = build(route("all", hosts=("h",)), route("svc", paths=("/",)))
    assert router.match("GET", "h", path) is None
    assert router._naive_match("GET", "h", path) is None


def test_invalid_regex_is_a_build_error() -> None:
    with pytest.raises(RouterBuildError, match="bad"):
        build(route("bad", paths=("~/(unclosed",)))


def test_invalid_header_regex_is_a_build_error() -> None:
    with pytest.raises(RouterBuildError, match="x-h"):
        build(route("bad", headers={"x-h": ("~*(",)}))


def test_empty_router_matches_nothing() -> None:
    router: Router[str] = Router.build([])
    assert router.match("GET", "h", "/") is None
    assert router.uses_headers is False
    assert len(router) == 0


# --------------------------------------------------------------------------- strip_path


def test_strip_path_prefix_route() -> None:
    router = build(route("svc", paths=("/svc",)))
    cases = {"/svc/x": "/x", "/svc": "/", "/svc/": "/", "/svc/a/b": "/a/b"}
    for request, stripped in cases.items():
        found = router.match("GET", "h", request)
        assert found is not None
        assert found.stripped_path == stripped, request


def test_strip_path_trailing_slash_prefix() -> None:
    found = build(route("svc", paths=("/svc/",))).match("GET", "h", "/svc/x")
    assert found is not None
    assert found.stripped_path == "/x"
    assert found.postfix == "x"


def test_strip_path_false_keeps_the_normalized_path() -> None:
    found = build(route("svc", paths=("/svc",), strip_path=False)).match("GET", "h", "/svc//x")
    assert found is not None
    assert found.stripped_path == "/svc/x"
    assert found.normalized_path == "/svc/x"


def test_strip_path_regex_removes_the_whole_matched_sequence() -> None:
    router = build(route("v", paths=(r"~/version/\d+/service",)))
    found = router.match("GET", "h", "/version/1/service/path/to/resource")
    assert found is not None
    assert found.stripped_path == "/path/to/resource"


def test_pathless_route_does_not_strip() -> None:
    found = build(route("h", hosts=("h",))).match("GET", "h", "/a/./b")
    assert found is not None
    assert found.matched_path is None
    assert found.stripped_path == "/a/b"


# --------------------------------------------------------------------------- hosts


def test_hosts_compare_case_insensitively_and_ignore_the_port() -> None:
    router = build(route("h", hosts=("Example.com",)))
    assert matched_id(router, "GET", "EXAMPLE.COM", "/") == "h"
    assert matched_id(router, "GET", "example.com:8443", "/") == "h"
    assert matched_id(router, "GET", "example.com.", "/") == "h"
    assert matched_id(router, "GET", "example.org", "/") is None
    assert matched_id(router, "GET", "", "/") is None


def test_route_host_with_port_requires_that_port() -> None:
    router = build(route("p", hosts=("example.com:8080",)))
    assert matched_id(router, "GET", "example.com:8080", "/") == "p"
    assert matched_id(router, "GET", "example.com:80", "/") is None
    assert matched_id(router, "GET", "example.com", "/") is None


def test_leftmost_wildcard_matches_one_or_more_labels() -> None:
    router = build(route("w", hosts=("*.example.com",)))
    assert matched_id(router, "GET", "a.example.com", "/") == "w"
    assert matched_id(router, "GET", "a.b.example.com:99", "/") == "w"
    assert matched_id(router, "GET", "example.com", "/") is None
    assert matched_id(router, "GET", "aexample.com", "/") is None


def test_rightmost_wildcard_matches_any_tld() -> None:
    router = build(route("w", hosts=("example.*",)))
    assert matched_id(router, "GET", "example.org", "/") == "w"
    assert matched_id(router, "GET", "example.co.uk", "/") == "w"
    assert matched_id(router, "GET", "myexample.org", "/") is None
    assert matched_id(router, "GET", "example", "/") is None


def test_wildcard_host_with_port() -> None:
    router = build(route("w", hosts=("*.example.com:8080",)))
    assert matched_id(router, "GET", "a.example.com:8080", "/") == "w"
    assert matched_id(router, "GET", "a.example.com", "/") is None


def test_wildcard_not_on_a_label_boundary_still_works() -> None:
    router = build(route("w", hosts=("*example.com",)), route("x", hosts=("x.com",)))
    assert matched_id(router, "GET", "myexample.com", "/") == "w"
    assert matched_id(router, "GET", "x.com", "/") == "x"


def test_ipv6_host() -> None:
    router = build(route("v6", hosts=("[::1]:8080",)))
    assert matched_id(router, "GET", "[::1]:8080", "/") == "v6"
    assert matched_id(router, "GET", "[::1]", "/") is None


def test_any_of_several_hosts() -> None:
    router = build(route("two", hosts=("a.com", "*.b.com")))
    assert matched_id(router, "GET", "a.com", "/") == "two"
    assert matched_id(router, "GET", "x.b.com", "/") == "two"
    assert matched_id(router, "GET", "c.com", "/") is None


# --------------------------------------------------------------------------- methods


def test_methods() -> None:
    router = build(route("m", methods=("GET", "HEAD"), paths=("/",)))
    assert matched_id(router, "GET", "h", "/") == "m"
    assert matched_id(router, "get", "h", "/") == "m"
    assert matched_id(router, "POST", "h", "/") is None


# --------------------------------------------------------------------------- headers


def test_header_values_match_case_insensitively() -> None:
    router = build(route("hd", headers={"x-version": ("V1", "v2")}))
    assert router.uses_headers is True
    assert matched_id(router, "GET", "h", "/", headers={"x-version": "v1"}) == "hd"
    assert matched_id(router, "GET", "h", "/", headers={"x-version": "V2"}) == "hd"
    assert matched_id(router, "GET", "h", "/", headers={"x-version": "v3"}) is None
    assert matched_id(router, "GET", "h", "/", headers={}) is None
    assert matched_id(router, "GET", "h", "/") is None


def test_header_regex_value() -> None:
    router = build(route("re", headers={"x-version": ("~*^v[0-9]+$",)}))
    assert matched_id(router, "GET", "h", "/", headers={"x-version": "V12"}) == "re"
    assert matched_id(router, "GET", "h", "/", headers={"x-version": "v1x"}) is None


def test_header_regex_searches_anywhere() -> None:
    router = build(route("re", headers={"user-agent": ("~*curl",)}))
    assert matched_id(router, "GET", "h", "/", headers={"user-agent": "X Curl/8"}) == "re"


def test_all_header_names_must_match() -> None:
    router = build(route("two", headers={"a": ("1",), "b": ("2",)}))
    assert matched_id(router, "GET", "h", "/", headers={"a": "1", "b": "2"}) == "two"
    assert matched_id(router, "GET", "h", "/", headers={"a": "1"}) is None


def test_repeated_header_lines_joined_by_the_engine_match_each_value() -> None:
    router = build(route("hd", headers={"x-tag": ("b",)}))
    assert matched_id(router, "GET", "h", "/", headers={"x-tag": "a, b"}) == "hd"
    assert matched_id(router, "GET", "h", "/", headers={"x-tag": "a, c"}) is None


def test_route_header_names_are_lowercased() -> None:
    router = build(route("hd", headers={"X-Tag": ("b",)}))
    assert matched_id(router, "GET", "h", "/", headers={"x-tag": "B"}) == "hd"


def test_uses_headers_false_without_header_rules() -> None:
    assert build(route("a", paths=("/",))).uses_headers is False


# --------------------------------------------------------------------------- snis, protocols


def test_snis_apply_only_to_tls_requests() -> None:
    router = build(route("s", snis=("api.example.com",), protocols=("https",)))
    assert matched_id(router, "GET", "h", "/", sni="api.example.com") == "s"
    assert matched_id(router, "GET", "h", "/", sni="API.example.com.") == "s"
    assert matched_id(router, "GET", "h", "/", sni="other.com") is None
    assert matched_id(router, "GET", "h", "/", sni="") is None  # TLS without SNI
    assert matched_id(router, "GET", "h", "/") == "s"  # plain HTTP: SNI not considered


def test_wildcard_snis() -> None:
    router = build(route("s", snis=("*.example.com", "api.*"), protocols=("https",)))
    assert matched_id(router, "GET", "h", "/", sni="a.example.com") == "s"
    assert matched_id(router, "GET", "h", "/", sni="api.org") == "s"
    assert matched_id(router, "GET", "h", "/", sni="example.com") is None


def test_non_http_routes_are_ignored() -> None:
    router = build(route("tcp", protocols=("tcp",), paths=("/",)), route("g", protocols=("grpc",)))
    assert matched_id(router, "GET", "h", "/x") == "g"
    assert len(router) == 1


def test_http_and_https_only_routes_both_match() -> None:
    router = build(route("s", protocols=("https",), paths=("/s",)), route("p", paths=("/p",)))
    assert matched_id(router, "GET", "h", "/s") == "s"
    assert matched_id(router, "GET", "h", "/p") == "p"


def test_target_is_returned() -> None:
    router: Router[int] = Router.build([(route("a", paths=("/a",)), 42)])
    found = router.match("GET", "h", "/a")
    assert found is not None
    assert found.target == 42
