"""Consistent hashing: stability, minimal remapping, hash inputs, cookie generation, fallback."""

from __future__ import annotations

from collections import Counter
from typing import Any

from balancer_support import FakeRequest, cluster

from meshgate.proxy.balancer import Balancer
from meshgate.proxy.balancer.hashing import query_arg

FIVE = [("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3), ("10.0.0.4", 4), ("10.0.0.5", 5)]


def hashing(*endpoints: Any, **fields: Any) -> Balancer:
    fields.setdefault("hash_on", "ip")
    return Balancer(cluster(*endpoints, algorithm="consistent-hashing", **fields))


def owner(b: Balancer, req: FakeRequest) -> int:
    t = b.pick(req)
    assert t is not None
    return t.port


def test_same_key_same_target_across_rebuilt_balancers() -> None:
    first, second = hashing(*FIVE), hashing(*reversed(FIVE))
    assert first.needs_request_data
    for i in range(200):
        req = FakeRequest(client_ip=f"198.51.100.{i}")
        assert owner(first, req) == owner(first, req) == owner(second, req)


def test_keys_spread_over_targets_by_weight() -> None:
    b = hashing(("10.0.0.1", 1, 100), ("10.0.0.2", 2, 100), ("10.0.0.3", 3, 200))
    counts = Counter(
        owner(b, FakeRequest(client_ip=f"10.9.{i // 250}.{i % 250}")) for i in range(4000)
    )
    assert 700 < counts[1] < 1300
    assert 700 < counts[2] < 1300
    assert 1600 < counts[3] < 2400


def test_removing_a_target_remaps_only_its_share() -> None:
    full, reduced = hashing(*FIVE), hashing(*FIVE[:4])
    keys = [FakeRequest(client_ip=f"203.0.113.{i % 250}", path=f"/{i}") for i in range(2000)]
    moved = 0
    for req in keys:
        before, after = owner(full, req), owner(reduced, req)
        if before != 5:
            moved += before != after
    assert moved == 0  # keys of the surviving targets stay put
    assert sum(owner(full, req) == 5 for req in keys) < 2000 * 0.35  # ~1/5 were on the removed one


def test_unhealthy_owner_is_skipped_and_layout_preserved() -> None:
    b = hashing(*FIVE)
    reqs = [FakeRequest(client_ip=f"192.0.2.{i}") for i in range(100)]
    before = [owner(b, r) for r in reqs]
    b.set_health("10.0.0.3", 3, False)
    during = [owner(b, r) for r in reqs]
    assert 3 not in during
    assert all(d == o for d, o in zip(during, before, strict=True) if o != 3)
    b.set_health("10.0.0.3", 3, True)
    assert [owner(b, r) for r in reqs] == before


def test_exclude_walks_to_the_next_target() -> None:
    b = hashing(*FIVE)
    req = FakeRequest(client_ip="192.0.2.77")
    first = b.pick(req)
    second = b.pick(req, exclude=[first] if first else [])
    assert second is not None
    assert second is not first


def test_header_input_with_fallback_to_ip_and_rr_when_both_missing() -> None:
    b = hashing(*FIVE, hash_on="header", hash_on_header="X-User", hash_fallback="ip")
    by_header = [
        owner(b, FakeRequest(client_ip="1.1.1.1", headers={"x-user": "u42"})) for _ in range(5)
    ]
    assert len(set(by_header)) == 1
    assert by_header[0] == owner(b, FakeRequest(client_ip="2.2.2.2", headers={"x-user": "u42"}))
    # no header: the fallback (client ip) decides; it matches an ip-hashing balancer
    ip_only = hashing(*FIVE)
    for i in range(30):
        req = FakeRequest(client_ip=f"100.64.0.{i}")
        assert owner(b, req) == owner(ip_only, req)
    # neither present: round-robin over all targets
    rr = hashing(*FIVE, hash_on="header", hash_on_header="x-user")
    assert {owner(rr, FakeRequest()) for _ in range(5)} == {1, 2, 3, 4, 5}


def test_cookie_is_generated_when_missing_and_then_sticks() -> None:
    b = hashing(*FIVE, hash_on="cookie", hash_on_cookie="mg", hash_on_cookie_path="/app")
    first = FakeRequest()
    port = owner(b, first)
    assert len(first.set_cookies) == 1
    name, value, path = first.set_cookies[0]
    assert (name, path) == ("mg", "/app")
    assert len(value) == 36
    for _ in range(5):
        again = FakeRequest(cookies={"mg": value})
        assert owner(b, again) == port
        assert again.set_cookies == []


def test_other_inputs_consumer_path_query_capture() -> None:
    cases: list[tuple[dict[str, Any], FakeRequest, FakeRequest]] = [
        (
            {"hash_on": "consumer"},
            FakeRequest(consumer_id="c1"),
            FakeRequest(consumer_id="c1", client_ip="9.9.9.9"),
        ),
        (
            {"hash_on": "path"},
            FakeRequest(path="/a/b"),
            FakeRequest(path="/a/b", client_ip="9.9.9.9"),
        ),
        (
            {"hash_on": "query_arg", "hash_on_query_arg": "user"},
            FakeRequest(query="x=1&user=bob&user=eve"),
            FakeRequest(query="user=bob", client_ip="9.9.9.9"),
        ),
        (
            {"hash_on": "uri_capture", "hash_on_uri_capture": "id"},
            FakeRequest(uri_captures={"id": "7"}),
            FakeRequest(uri_captures={"id": "7"}, client_ip="9.9.9.9"),
        ),
    ]
    for fields, a, b_req in cases:
        b = hashing(*FIVE, **fields)
        assert owner(b, a) == owner(b, b_req), fields
        # different values spread over more than one target
        spread = {owner(b, _vary(fields["hash_on"], i)) for i in range(40)}
        assert len(spread) > 1, fields


def _vary(kind: str, i: int) -> FakeRequest:
    return {
        "consumer": FakeRequest(consumer_id=f"c{i}"),
        "path": FakeRequest(path=f"/p/{i}"),
        "query_arg": FakeRequest(query=f"user=u{i}"),
        "uri_capture": FakeRequest(uri_captures={"id": str(i)}),
    }[kind]


def test_query_arg_parsing() -> None:
    assert query_arg("a=1&b=2&b=3", "b") == "2"
    assert query_arg("na%6De=x+y", "name") == "x y"
    assert query_arg("flag&b=1", "flag") == ""
    assert query_arg("", "a") is None
    assert query_arg("ab=1", "a") is None
