"""Property: the indexed lookup always picks what a scan of the ranked entries picks."""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshgate.proxy import router_index
from meshgate.proxy.router import Router
from meshgate.snapshot import Route

PATHS = [
    r"~/ab?/",
    r"~/a+",
    r"~/a%2fb",
    r"~/a\.?1",
    "/",
    "/a",
    "/a/",
    "/a/b",
    "/ab",
    "/b",
    "/a%2Fb",
    r"~/a/\d+",
    r"~/(?<x>a|b)/",
    "~/b$",
    "~/a|/b",
]
HOSTS = ["a.com", "b.com", "*.a.com", "a.*", "a.com:8080", "*.com", "*a.com", "*.a.com:80"]
SNIS = ["a.com", "*.a.com", "b.*"]
HEADER_VALUES = ["1", "2", "~*^v[0-9]"]

route_fields = st.fixed_dictionaries(
    {
        "methods": st.lists(st.sampled_from(["GET", "POST"]), max_size=2, unique=True),
        "hosts": st.lists(st.sampled_from(HOSTS), max_size=2, unique=True),
        "paths": st.lists(st.sampled_from(PATHS), max_size=3, unique=True),
        "headers": st.dictionaries(
            st.sampled_from(["x-h", "x-k"]),
            st.lists(st.sampled_from(HEADER_VALUES), min_size=1, max_size=2, unique=True),
            max_size=2,
        ),
        "snis": st.lists(st.sampled_from(SNIS), max_size=1),
        "regex_priority": st.integers(-1, 2),
        "created_at": st.integers(0, 2),
        "strip_path": st.booleans(),
        "protocols": st.sampled_from([("http", "https"), ("https",), ("grpc",), ("tcp",)]),
        "priority": st.one_of(st.none(), st.integers(-1, 2)),
    }
)


def make_routes(fields: list[dict[str, Any]]) -> list[Route]:
    routes = []
    for number, spec in enumerate(fields):
        spec = dict(spec)
        spec["headers"] = {name: tuple(values) for name, values in spec["headers"].items()}
        for key in ("methods", "hosts", "paths", "snis"):
            spec[key] = tuple(spec[key])
        routes.append(Route(id=f"r{number:02d}", **spec))
    return routes


requests = st.tuples(
    st.sampled_from(["GET", "POST", "get", "PUT"]),
    st.sampled_from(
        ["a.com", "A.COM:8080", "x.a.com", "y.x.a.com:80", "a.org", "b.com", "ba.com", ""]
    ),
    st.sampled_from(
        [
            "/",
            "/a",
            "/a/1",
            "/ab/c",
            "/b",
            "/x/b",
            "/a/../b",
            "/%61/2",
            "//a//b/",
            "*",
            "/a%2fb",
            "/a1",
            "/a.1",
            "/aaa/",
            "/b/",
        ]
    ),
    st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {},
            optional={
                "x-h": st.sampled_from(["1", "2", "V3", "0, 1"]),
                "x-k": st.sampled_from(["1", "x"]),
            },
        ),
    ),
    st.sampled_from([None, "a.com", "x.a.com", "b.org", ""]),
)


def outcome(found: Any) -> Any:
    if found is None:
        return None
    return (
        found.target,
        found.matched_path,
        found.stripped_path,
        found.uri_captures,
        found.postfix,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(route_fields, max_size=12), st.lists(requests, min_size=1, max_size=8))
def test_indexed_match_equals_naive_scan(fields: list[dict[str, Any]], reqs: list[Any]) -> None:
    routes = make_routes(fields)
    router: Router[str] = Router.build([(r, r.id) for r in routes])
    with mock.patch.object(router_index, "HEADER_KEYING_THRESHOLD", 0):
        header_keyed: Router[str] = Router.build([(r, r.id) for r in routes])
    for method, host, path, headers, sni in reqs:
        found = router.match(method, host, path, headers, sni)
        naive = router._naive_match(method, host, path, headers, sni)
        assert outcome(found) == outcome(naive)
        assert outcome(header_keyed.match(method, host, path, headers, sni)) == outcome(naive)
        selected = [e for e in router.explain(method, host, path, headers, sni) if e.selected]
        expected = [] if found is None else [(found.target, found.matched_path)]
        assert [(e.route.id, e.path) for e in selected] == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(route_fields, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_order_is_independent_of_input_order(fields: list[dict[str, Any]], rng: Any) -> None:
    routes = make_routes(fields)
    shuffled = list(routes)
    rng.shuffle(shuffled)
    first = Router.build([(r, r.id) for r in routes]).explain("GET", "a.com", "/a")
    second = Router.build([(r, r.id) for r in shuffled]).explain("GET", "a.com", "/a")
    assert [(e.route.id, e.path) for e in first if e.rank is not None] == [
        (e.route.id, e.path) for e in second if e.rank is not None
    ]


host_only_fields = st.fixed_dictionaries(
    {
        "hosts": st.lists(st.sampled_from(HOSTS), min_size=1, max_size=2, unique=True),
        "paths": st.lists(st.sampled_from(["/", "/a", r"~/a"]), max_size=1),
        "created_at": st.integers(0, 2),
    }
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(host_only_fields, min_size=1, max_size=6),
    st.sampled_from(
        ["a.com", "A.COM:8080", "x.a.com", "y.x.a.com:80", "a.org", "b.com", "ba.com:80"]
    ),
    st.sampled_from(["/", "/a", "/b"]),
)
def test_host_index_equals_naive_scan(fields: list[dict[str, Any]], host: str, path: str) -> None:
    routes = [
        Route(
            id=f"r{n}", hosts=tuple(f["hosts"]), paths=tuple(f["paths"]), created_at=f["created_at"]
        )
        for n, f in enumerate(fields)
    ]
    router: Router[str] = Router.build([(r, r.id) for r in routes])
    assert outcome(router.match("GET", host, path)) == outcome(
        router._naive_match("GET", host, path)
    )


LISTENERS = ["l1", "l2", "l3"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(route_fields, max_size=10),
    st.lists(st.lists(st.sampled_from(LISTENERS[:2]), max_size=2, unique=True), max_size=10),
    st.lists(requests, min_size=1, max_size=6),
)
def test_per_listener_routers_equal_scan_of_their_routes(
    fields: list[dict[str, Any]], scopes: list[list[str]], reqs: list[Any]
) -> None:
    routes = [
        r.model_copy(update={"listeners": tuple(scopes[n]) if n < len(scopes) else ()})
        for n, r in enumerate(make_routes(fields))
    ]
    default, per_listener = Router.build_per_listener([(r, r.id) for r in routes])
    if not any(r.listeners for r in routes):
        assert per_listener is None
    for name in LISTENERS:
        router = default if per_listener is None else per_listener.get(name, default)
        served = [r for r in routes if not r.listeners or name in r.listeners]
        reference: Router[str] = Router.build([(r, r.id) for r in served])
        for method, host, path, headers, sni in reqs:
            found = router.match(method, host, path, headers, sni)
            assert outcome(found) == outcome(
                reference._naive_match(method, host, path, headers, sni)
            )
            if found is not None:
                assert not found.route.listeners or name in found.route.listeners
