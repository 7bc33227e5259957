"""traditional_compatible priority order: weight, plain hosts, headers, regex, length, age."""

from __future__ import annotations

from typing import Any

from meshgate.proxy.router import Router
from meshgate.snapshot import Route


def route(route_id: str, **fields: Any) -> Route:
    return Route(id=route_id, **fields)


def build(*routes: Route) -> Router[str]:
    return Router.build([(r, r.id) for r in routes])


def winner(router: Router[str], method: str, host: str, path: str, **kw: Any) -> str | None:
    found = router.match(method, host, path, **kw)
    naive = router._naive_match(method, host, path, **kw)
    assert (found and found.target) == (naive and naive.target)
    return None if found is None else found.target


def order(router: Router[str]) -> list[tuple[str, str | None]]:
    return [(e.route.id, e.path) for e in router.explain("GET", "h", "/")]


def kong_docs_example() -> Router[str]:
    return build(
        route("status", paths=(r"~/status/\d+",), regex_priority=0, created_at=1),
        route("version_status", paths=(r"~/version/\d+/status/\d+",), regex_priority=6),
        route("version", paths=("/version",), created_at=3),
        route("version_any", paths=("~/version/any/",), regex_priority=0, created_at=4),
    )


def test_kong_docs_worked_example_evaluation_order() -> None:
    assert [route_id for route_id, _ in order(kong_docs_example())] == [
        "version_status",
        "status",
        "version_any",
        "version",
    ]


def test_kong_docs_worked_example_matches() -> None:
    router = kong_docs_example()
    assert winner(router, "GET", "h", "/version/1/status/2") == "version_status"
    assert winner(router, "GET", "h", "/status/5") == "status"
    assert winner(router, "GET", "h", "/version/any/thing") == "version_any"
    assert winner(router, "GET", "h", "/version/1") == "version"
    assert winner(router, "GET", "h", "/version") == "version"


def test_more_priority_points_beat_a_longer_path() -> None:
    router = build(
        route("long", paths=("/a/very/long/path",)),
        route("method", methods=("GET",), paths=("/",)),
    )
    assert winner(router, "GET", "h", "/a/very/long/path/x") == "method"
    assert winner(router, "POST", "h", "/a/very/long/path/x") == "long"


def test_paths_count_as_a_priority_point() -> None:
    router = build(route("host_only", hosts=("h",)), route("host_path", hosts=("h",), paths=("/",)))
    assert winner(router, "GET", "h", "/x") == "host_path"


def test_every_field_counts_one_point() -> None:
    router = build(
        route("p1", paths=("/",)),
        route("p2", paths=("/",), methods=("GET",)),
        route("p3", paths=("/",), methods=("GET",), headers={"x": ("1",)}),
        route("p4", paths=("/",), methods=("GET",), headers={"x": ("1",)}, snis=("h",)),
        route(
            "p5", paths=("/",), methods=("GET",), headers={"x": ("1",)}, snis=("h",), hosts=("h",)
        ),
    )
    assert [r for r, _ in order(router)] == ["p5", "p4", "p3", "p2", "p1"]
    assert winner(router, "GET", "h", "/", headers={"x": "1"}, sni="h") == "p5"
    assert winner(router, "GET", "h2", "/", headers={"x": "1"}, sni="h") == "p4"
    assert winner(router, "GET", "h2", "/", headers={"x": "1"}, sni="other") == "p3"
    assert winner(router, "GET", "h2", "/") == "p2"
    assert winner(router, "PUT", "h2", "/") == "p1"


def test_plain_hosts_beat_wildcard_hosts() -> None:
    router = build(
        route("wild", hosts=("*.example.com",), paths=("/longer/path",)),
        route("plain", hosts=("a.example.com", "b.example.com"), paths=("/",)),
    )
    assert winner(router, "GET", "a.example.com", "/longer/path") == "plain"
    assert winner(router, "GET", "c.example.com", "/longer/path") == "wild"


def test_a_single_wildcard_host_demotes_the_whole_route() -> None:
    router = build(
        route("mixed", hosts=("a.example.com", "*.example.org"), paths=("/longer",)),
        route("plain", hosts=("a.example.com",), paths=("/",)),
    )
    assert winner(router, "GET", "a.example.com", "/longer") == "plain"


def test_plain_hosts_beat_no_hosts_at_equal_weight() -> None:
    # Kong's PLAIN_HOST_ONLY bit is set only when hosts are configured and none is a wildcard.
    router = build(
        route("method", methods=("GET",), paths=("/longer",)),
        route("host", hosts=("h",), paths=("/",)),
    )
    assert winner(router, "GET", "h", "/longer") == "host"


def test_more_headers_first() -> None:
    router = build(
        route("one", headers={"a": ("1",)}, paths=("/long/path",)),
        route("two", headers={"a": ("1",), "b": ("2",)}, paths=("/",)),
    )
    assert winner(router, "GET", "h", "/long/path", headers={"a": "1", "b": "2"}) == "two"
    assert winner(router, "GET", "h", "/long/path", headers={"a": "1"}) == "one"


def test_regex_before_plain_then_regex_priority() -> None:
    router = build(
        route("plain", paths=("/items/123/very/long",)),
        route("re_low", paths=(r"~/items/\d+",), regex_priority=1),
        route("re_high", paths=(r"~/items/1",), regex_priority=5),
    )
    assert winner(router, "GET", "h", "/items/123/very/long") == "re_high"
    assert winner(router, "GET", "h", "/items/234/very/long") == "re_low"
    assert winner(router, "GET", "h", "/items/x/very/long") is None


def test_regex_priority_can_be_negative() -> None:
    router = build(
        route("neg", paths=(r"~/a",), regex_priority=-1),
        route("zero", paths=(r"~/a",), regex_priority=0, created_at=5),
    )
    assert winner(router, "GET", "h", "/a") == "zero"


def test_regex_priority_does_not_reorder_plain_paths() -> None:
    router = build(
        route("short", paths=("/a",), regex_priority=100),
        route("long", paths=("/a/b",)),
    )
    assert winner(router, "GET", "h", "/a/b") == "long"


def test_created_at_then_id_break_ties() -> None:
    router = build(
        route("b_new", paths=("/x",), created_at=2),
        route("c_old", paths=("/x",), created_at=1),
        route("a_new", paths=("/x",), created_at=2),
    )
    assert [r for r, _ in order(router)] == ["c_old", "a_new", "b_new"]
    assert winner(router, "GET", "h", "/x") == "c_old"


def test_each_path_of_a_multi_path_route_ranks_separately() -> None:
    router = build(route("x", paths=("/a", "/abc")), route("y", paths=("/ab",)))
    assert order(router) == [("x", "/abc"), ("y", "/ab"), ("x", "/a")]
    assert winner(router, "GET", "h", "/abcd") == "x"
    assert winner(router, "GET", "h", "/abz") == "y"
    assert winner(router, "GET", "h", "/az") == "x"
    found = router.match("GET", "h", "/abcd")
    assert found is not None
    assert found.matched_path == "/abc"


def test_order_does_not_depend_on_input_order() -> None:
    routes = [
        route("a", paths=("/x",)),
        route("b", paths=("/x",), methods=("GET",)),
        route("c", paths=(r"~/x",)),
        route("d", hosts=("*.h",), paths=("/x",)),
    ]
    forward = order(Router.build([(r, r.id) for r in routes]))
    backward = order(Router.build([(r, r.id) for r in reversed(routes)]))
    assert forward == backward
