"""``Router.match_head``: the remembered answers are the answers ``match`` gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_router_property import make_routes, outcome, requests, route_fields

from meshgate.proxy import router as router_module
from meshgate.proxy.router import Router
from meshgate.snapshot import Route


def _head(method: str, host: str, path: str) -> tuple[bytes, bytes | None, bytes]:
    return method.encode(), (host.encode() if host else None), path.encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(route_fields, max_size=10),
    st.lists(requests, min_size=1, max_size=8),
    st.integers(1, 6),
)
def test_remembered_answers_equal_match(
    fields: list[dict[str, Any]], reqs: list[Any], memo_size: int
) -> None:
    router: Router[str] = Router.build([(r, r.id) for r in make_routes(fields)])
    with mock.patch.object(router_module, "MEMO_SIZE", memo_size):
        for _ in range(2):  # the second round answers from the memo (where it holds them)
            for method, host, path, headers, sni in reqs:
                header_map = headers or {}
                expected = router.match(method, host.lower(), path, header_map, sni)
                found = router.match_head(*_head(method, host, path), _const(header_map), sni)
                assert outcome(found) == outcome(expected)
        assert len(router._memo) <= memo_size


def _const(headers: dict[str, str]) -> Callable[[], dict[str, str]]:
    return lambda: headers


def _counting(router: Router[str]) -> tuple[mock.MagicMock, Any]:
    calls = mock.MagicMock(side_effect=Router.match, autospec=True)
    return calls, mock.patch.object(Router, "match", lambda self, *a: calls(self, *a))


def test_a_head_seen_before_is_not_matched_again() -> None:
    router: Router[str] = Router.build([(Route(id="r", paths=("/a",)), "r")])
    calls, patched = _counting(router)
    no_headers = mock.MagicMock(side_effect=AssertionError("headers read"))
    with patched:
        for _ in range(3):
            assert router.match_head(b"GET", b"h", b"/a/x", no_headers) is not None
            assert router.match_head(b"GET", b"h", b"/zz", no_headers) is None  # misses too
            assert router.match_head(b"GET", b"h", b"/a/x", no_headers, "sni.a") is not None
    assert calls.call_count == 3  # one per distinct (method, host, path, sni)


def test_full_memo_starts_over() -> None:
    router: Router[str] = Router.build([(Route(id="r", paths=("/",)), "r")])
    with mock.patch.object(router_module, "MEMO_SIZE", 4):
        for number in range(10):
            router.match_head(b"GET", None, b"/%d" % number, dict)
            assert 1 <= len(router._memo) <= 4
        assert (b"GET", None, b"/9", None) in router._memo


def test_header_routes_are_matched_every_time_with_the_headers() -> None:
    route = Route(id="v2", paths=("/",), headers={"x-version": ("2",)})
    router: Router[str] = Router.build([(route, "v2")])
    calls, patched = _counting(router)
    with patched:
        for version, expected in (("2", "v2"), ("1", None), ("2", "v2")):
            found = router.match_head(b"GET", b"h", b"/", _const({"x-version": version}))
            assert (found and found.target) == expected
    assert calls.call_count == 3
    assert router._memo == {}
