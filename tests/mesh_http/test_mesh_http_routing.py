"""Listener-scoped routes and explicit route priorities, through a live gateway."""

from __future__ import annotations

from mesh_http_kit import ScriptedUpstream, cluster, listener, mesh_gateway, route, service

from meshgate import snapshot


def scoped(ports: dict[str, int]) -> snapshot.Snapshot:
    names = ("a", "b", "c")
    return snapshot.Snapshot(
        listeners=(listener("one"), listener("two"), listener("three")),
        routes=(
            route("ra", "/", service="a", listeners=("one",)),
            route("rb", "/", service="b", listeners=("two",)),
            route("rc", "/common", service="c"),
        ),
        services=tuple(service(n, ports[n]) for n in names),
        clusters=tuple(cluster(n, [ports[n]]) for n in names),
    )


def test_routes_scoped_to_listeners() -> None:
    upstreams = [ScriptedUpstream(n) for n in ("a", "b", "c")]
    with mesh_gateway(upstreams, scoped) as gw:
        assert gw.once("GET", "/x", "one").json()["name"] == "a"
        assert gw.once("GET", "/x", "two").json()["name"] == "b"
        assert gw.once("GET", "/x", "three").status == 404  # no route names it
        for name in ("one", "two", "three"):
            assert gw.once("GET", "/common/1", name).json()["name"] == "c"


def prioritised(ports: dict[str, int]) -> snapshot.Snapshot:
    names = ("a", "b", "c")
    return snapshot.Snapshot(
        listeners=(listener("proxy"),),
        routes=(
            # Kong's order alone would pick the longest prefix, "kong"
            route("kong", "/api/v1/items", service="a"),
            route("low", "/api", service="b", priority=1),
            route("high", "/api/v1", service="c", priority=5, methods=("POST",)),
        ),
        services=tuple(service(n, ports[n]) for n in names),
        clusters=tuple(cluster(n, [ports[n]]) for n in names),
    )


def test_priority_ranks_before_kong_order() -> None:
    upstreams = [ScriptedUpstream(n) for n in ("a", "b", "c")]
    with mesh_gateway(upstreams, prioritised) as gw:
        client = gw.client()
        assert client.request("GET", "/api/v1/items").json()["name"] == "b"
        assert client.request("POST", "/api/v1/items").json()["name"] == "c"
        assert client.request("POST", "/api/x").json()["name"] == "b"
        client.close()
