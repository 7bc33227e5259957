"""Traffic split (``Route.backends``) and header modifiers, through a live gateway."""

from __future__ import annotations

from collections import Counter

from mesh_http_kit import ScriptedUpstream, cluster, listener, mesh_gateway, route, service

from meshgate import snapshot


def split_snapshot(ports: dict[str, int]) -> snapshot.Snapshot:
    names = ("a", "b", "c")
    return snapshot.Snapshot(
        listeners=(listener("proxy"),),
        routes=(
            route(
                "split",
                "/",
                service="a",
                backends=(
                    snapshot.WeightedBackend(service="a", weight=90),
                    snapshot.WeightedBackend(service="b", weight=10),
                    snapshot.WeightedBackend(service="c", weight=0),
                ),
            ),
        ),
        services=tuple(service(n, ports[n]) for n in names),
        clusters=tuple(cluster(n, [ports[n]]) for n in names),
    )


def test_split_90_10_over_2000_requests() -> None:
    upstreams = [ScriptedUpstream("a"), ScriptedUpstream("b"), ScriptedUpstream("c")]
    with mesh_gateway(upstreams, split_snapshot) as gw:
        client = gw.client()
        seen: Counter[str] = Counter()
        total = 2000
        for _ in range(total):
            reply = client.request("GET", "/x")
            assert reply.status == 200
            seen[reply.json()["name"]] += 1
        client.close()
    # Binomial(2000, 0.9): sd = 0.67 percentage points; ±3 points is over 4 sd.
    share_a = seen["a"] / total
    assert abs(share_a - 0.90) <= 0.03, seen
    assert seen["a"] + seen["b"] == total
    assert seen["c"] == 0  # weight 0: never picked


def headers_snapshot(ports: dict[str, int]) -> snapshot.Snapshot:
    return snapshot.Snapshot(
        listeners=(listener("proxy"),),
        routes=(
            route(
                "edit",
                "/edit",
                service="a",
                request_headers=snapshot.HeaderModifier(
                    remove=("x-drop",),
                    set=(("x-set", "new"),),
                    add=(("x-add", "one"), ("x-set", "extra")),
                ),
                response_headers=snapshot.HeaderModifier(
                    remove=("x-up",), set=(("x-keep", "replaced"),), add=(("x-added", "1"),)
                ),
            ),
            route("plain", "/plain", service="a"),
        ),
        services=(service("a", ports["a"]),),
        clusters=(cluster("a", [ports["a"]]),),
    )


def test_header_modifiers_reach_upstream_and_client() -> None:
    with mesh_gateway([ScriptedUpstream("a")], headers_snapshot) as gw:
        client = gw.client()
        sent = {"x-drop": "gone", "x-set": "old", "x-other": "kept"}
        reply = client.request("GET", "/edit", headers=sent)
        assert reply.status == 200
        upstream_saw = reply.json()["headers"]
        assert "x-drop" not in upstream_saw
        assert upstream_saw["x-other"] == "kept"
        assert upstream_saw["x-add"] == "one"
        # set replaced the client's value, then add appended one more line
        assert upstream_saw["x-set"] == "new, extra"
        assert "x-up" not in reply.headers
        assert reply.headers["x-keep"] == "replaced"
        assert reply.headers["x-added"] == "1"
        plain = client.request("GET", "/plain", headers=sent)
        assert plain.json()["headers"]["x-drop"] == "gone"
        assert plain.headers["x-up"] == "a"
        assert plain.headers["x-keep"] == "yes"
        client.close()
