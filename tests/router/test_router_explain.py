"""``Router.explain``: every entry in priority order, whether it matches and why."""

from __future__ import annotations

from typing import Any

from meshgate.proxy.router import Router
from meshgate.snapshot import Route


def route(route_id: str, **fields: Any) -> Route:
    return Route(id=route_id, **fields)


def sample_router() -> Router[str]:
    routes = [
        route("get_only", name="get-only", methods=("GET", "HEAD"), paths=("/api",)),
        route("api", paths=("/api",)),
        route("bar", paths=("/bar",)),
        route("hosted", hosts=("example.com", "*.example.org"), paths=("/",)),
        route("hdr", headers={"x-v": ("1", "~*^v")}, paths=("/",)),
        route("tls", snis=("a.com",), paths=("/",), protocols=("https",)),
        route("stream", protocols=("tcp",)),
    ]
    return Router.build([(r, r.id) for r in routes])


def test_explain_lists_every_entry_in_priority_order_with_ignored_routes_last() -> None:
    explained = sample_router().explain("POST", "other.com", "/api/x")
    # weight 2 first: more headers, then the longer path, then id; weight 1 after
    assert [e.route.id for e in explained] == [
        "hdr",
        "get_only",
        "hosted",
        "tls",
        "api",
        "bar",
        "stream",
    ]
    assert [e.rank for e in explained] == [0, 1, 2, 3, 4, 5, None]


def test_explain_reasons() -> None:
    explained = {e.route.id: e for e in sample_router().explain("POST", "other.com", "/api/x")}
    assert explained["get_only"].reason == "method POST not in GET, HEAD"
    assert explained["bar"].reason == "path /api/x does not match /bar"
    assert explained["hosted"].reason == "host other.com not in example.com, *.example.org"
    assert explained["hdr"].reason == "header x-v missing"
    assert explained["tls"].reason == "selected"  # plain HTTP: SNI not considered
    assert explained["tls"].selected
    assert explained["tls"].matched
    assert explained["api"].matched
    assert not explained["api"].selected
    assert explained["api"].reason == "outranked by route tls (path /)"
    assert "not HTTP" in explained["stream"].reason
    assert not explained["stream"].matched


def test_explain_outranked_names_the_winner_and_its_path() -> None:
    explained = {e.route.id: e for e in sample_router().explain("GET", "h", "/api", sni="x")}
    assert explained["get_only"].selected
    assert explained["api"].matched
    assert not explained["api"].selected
    assert explained["api"].reason == "outranked by route get-only (path /api)"


def test_explain_header_and_sni_reasons() -> None:
    router = sample_router()
    explained = {
        e.route.id: e for e in router.explain("GET", "h", "/z", headers={"x-v": "2"}, sni="b.com")
    }
    assert explained["hdr"].reason == "header x-v: 2 not in 1, ~*^v"
    assert explained["tls"].reason == "sni b.com not in a.com"


def test_explain_reports_several_failures_at_once() -> None:
    explained = sample_router().explain("POST", "x", "/nope")
    get_only = next(e for e in explained if e.route.id == "get_only")
    assert get_only.reason == "method POST not in GET, HEAD; path /nope does not match /api"


def test_explain_selected_agrees_with_match() -> None:
    router = sample_router()
    requests = [
        ("GET", "example.com", "/api"),
        ("GET", "a.example.org:8080", "/x"),
        ("POST", "x", "/api/1"),
        ("GET", "x", "/bar"),
        ("GET", "x", "/nothing"),
    ]
    for method, host, path in requests:
        found = router.match(method, host, path)
        selected = [e for e in router.explain(method, host, path) if e.selected]
        if found is None:
            assert selected == []
        else:
            assert len(selected) == 1
            assert (selected[0].route.id, selected[0].path) == (found.route.id, found.matched_path)


def test_explain_priority_text() -> None:
    explained = {e.route.id: e for e in sample_router().explain("GET", "h", "/")}
    assert explained["hosted"].priority == "weight 2, plain hosts 0, headers 0, path length 1"
    assert explained["api"].priority == "weight 1, plain hosts 0, headers 0, path length 4"
    regex = Router.build([(route("re", paths=("~/a",), regex_priority=3), "re")])
    assert regex.explain("GET", "h", "/")[0].priority == (
        "weight 1, plain hosts 0, headers 0, regex priority 3"
    )


def test_explain_non_absolute_path() -> None:
    explained = sample_router().explain("GET", "h", "*")
    assert all(not e.matched for e in explained)
    assert "not absolute" in explained[0].reason
