"""The gateway compiler's mapping rules, determinism and node settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshgate.compiler import NodeSettings, compile_gateway, parse_proxy_listen
from meshgate.errors import ConfigError
from meshgate.resources import load_dict, load_file
from meshgate.snapshot import Snapshot

REALISTIC = Path(__file__).parents[1] / "resources" / "data" / "kong-realistic.yaml"


def compile_doc(node: NodeSettings | None = None, **sections: Any) -> Snapshot:
    return compile_gateway(
        load_dict({"_format_version": "3.0", **sections}), node or NodeSettings()
    )


def test_compiling_is_deterministic_and_versioned() -> None:
    config = load_file(REALISTIC)
    first, second = compile_gateway(config, NodeSettings()), compile_gateway(config, NodeSettings())
    assert first == second
    assert first.version == first.content_hash() != ""
    assert Snapshot.from_json(first.to_json()) == first


def test_layout_does_not_change_the_snapshot() -> None:
    nested = compile_doc(
        services=[{"name": "s", "host": "x", "routes": [{"name": "r", "paths": ["/"]}]}]
    )
    flat = compile_doc(
        routes=[{"name": "r", "paths": ["/"], "service": "s"}],
        services=[{"name": "s", "host": "x"}],
    )
    assert nested == flat


def test_content_change_changes_the_version() -> None:
    one = compile_doc(services=[{"name": "s", "host": "x"}])
    two = compile_doc(services=[{"name": "s", "host": "x", "retries": 1}])
    assert one.version != two.version


def test_service_on_an_upstream_uses_its_cluster() -> None:
    snap = compile_doc(
        services=[
            {"name": "s", "host": "pool", "port": 1234},
            {"name": "direct", "url": "https://api.example.com"},
        ],
        upstreams=[{"name": "pool", "targets": [{"target": "10.0.0.1:81"}]}, {"name": "unused"}],
    )
    services = {s.name: s for s in snap.services}
    clusters = {c.name: c for c in snap.clusters}
    assert services["s"].cluster == "upstream:pool"
    assert [(e.host, e.port, e.weight) for e in clusters["upstream:pool"].endpoints] == [
        ("10.0.0.1", 81, 100)
    ]
    assert clusters["upstream:pool"].upstream_id is not None
    direct = clusters[services["direct"].cluster]
    assert services["direct"].cluster.startswith("service:")
    assert [(e.host, e.port) for e in direct.endpoints] == [("api.example.com", 443)]
    assert "upstream:unused" in clusters
    assert [c.name for c in snap.clusters] == sorted(clusters)


def test_latest_duplicate_target_wins_and_weight_zero_stays() -> None:
    snap = compile_doc(
        upstreams=[
            {
                "name": "pool",
                "targets": [
                    {"target": "10.0.0.1:80", "weight": 7, "created_at": 2000},
                    {"target": "10.0.0.1:80", "weight": 9, "created_at": 1000},
                    {"target": "10.0.0.2:80", "weight": 0, "created_at": 1500},
                ],
            }
        ]
    )
    endpoints = [(e.host, e.weight) for e in snap.clusters[0].endpoints]
    assert endpoints == [("10.0.0.2", 0), ("10.0.0.1", 7)]


def test_upstream_settings_are_copied() -> None:
    snap = compile_doc(
        upstreams=[
            {
                "name": "pool",
                "hash_on": "cookie",
                "hash_on_cookie": "sid",
                "slots": 100,
                "host_header": "pool.internal",
                "healthchecks": {"active": {"healthy": {"interval": 3}}, "threshold": 25},
            }
        ]
    )
    cluster = snap.clusters[0]
    assert (cluster.algorithm, cluster.hash_on, cluster.hash_on_cookie) == (
        "consistent-hashing",
        "cookie",
        "sid",
    )
    assert (cluster.slots, cluster.host_header) == (100, "pool.internal")
    assert cluster.healthchecks.active.healthy.interval == 3
    assert cluster.healthchecks.threshold == 25


def test_disabled_service_loses_its_routes_and_their_plugins() -> None:
    snap = compile_doc(
        services=[
            {
                "name": "off",
                "host": "x",
                "enabled": False,
                "routes": [{"name": "r", "paths": ["/"], "plugins": [{"name": "cors"}]}],
                "plugins": [{"name": "key-auth"}],
            },
            {"name": "on", "host": "y", "routes": [{"name": "kept", "paths": ["/on"]}]},
        ],
        routes=[{"name": "orphan", "paths": ["/o"]}],
    )
    assert sorted(r.name or "" for r in snap.routes) == ["kept", "orphan"]
    assert [p.name for p in snap.plugins] == ["key-auth"]
    assert {s.name: s.enabled for s in snap.services} == {"off": False, "on": True}


def test_route_mapping_normalises_headers_and_orders_protocols() -> None:
    snap = compile_doc(
        routes=[
            {
                "name": "r",
                "protocols": ["https", "http"],
                "methods": ["GET"],
                "headers": {"X-A": ["1"], "x-a": ["2", "1"], "B": "v"},
                "paths": ["/"],
            }
        ]
    )
    route = snap.routes[0]
    assert route.headers == {"b": ("v",), "x-a": ("1", "2")}
    assert route.protocols == ("http", "https")
    assert route.methods == ("GET",)


def test_routes_are_ordered_by_created_at_then_id() -> None:
    snap = compile_doc(
        routes=[
            {"name": "c", "paths": ["/c"], "created_at": 30},
            {"name": "a", "paths": ["/a"], "created_at": 10},
            {"name": "b", "paths": ["/b"], "created_at": 10},
        ]
    )
    stamps = [(r.created_at, r.id) for r in snap.routes]
    assert stamps == sorted(stamps)
    assert snap.routes[-1].name == "c"


def test_tls_verify_default_applies_to_tls_services_only() -> None:
    node = NodeSettings(tls_verify_default=True)
    snap = compile_doc(
        node,
        services=[
            {"name": "tls", "url": "https://a.com"},
            {"name": "pinned", "url": "https://b.com", "tls_verify": False},
            {"name": "plain", "url": "http://c.com"},
        ],
    )
    assert {s.name: s.tls_verify for s in snap.services} == {
        "tls": True,
        "pinned": False,
        "plain": None,
    }


def test_plugins_and_consumers_keep_resolved_ids() -> None:
    snap = compile_file_realistic()
    consumer_ids = {c.id for c in snap.consumers}
    route_ids = {r.id for r in snap.routes}
    service_ids = {s.id for s in snap.services}
    for plugin in snap.plugins:
        assert plugin.consumer is None or plugin.consumer in consumer_ids
        assert plugin.route is None or plugin.route in route_ids
        assert plugin.service is None or plugin.service in service_ids
    mobile = next(c for c in snap.consumers if c.username == "mobile-app")
    assert mobile.credentials["keyauth_credentials"][0]["key"] == "mobile-app-secret-key"


def compile_file_realistic() -> Snapshot:
    return compile_gateway(load_file(REALISTIC), NodeSettings())


def test_realistic_file_compiles_without_the_disabled_service_routes() -> None:
    snap = compile_file_realistic()
    assert "legacy-route" not in {r.name for r in snap.routes}
    assert snap.certificates[0].snis == ("*.billing.example.com", "billing.example.com")
    billing = next(s for s in snap.services if s.name == "billing")
    assert billing.cluster == "upstream:billing-upstream"
    assert billing.ca_certificates == (snap.ca_certificates[0].id,)


def test_unknown_default_certificate_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_doc(NodeSettings(default_certificate="nope"))
    assert caught.value.violations[0].path == "default_certificate"


def test_default_certificate_goes_to_https_listeners() -> None:
    config = load_file(REALISTIC)
    node = NodeSettings(default_certificate=config.certificates[0].id)
    snap = compile_gateway(config, node)
    assert {(lis.protocol, lis.default_certificate) for lis in snap.listeners} == {
        ("http", None),
        ("https", config.certificates[0].id),
    }


def test_service_port_zero_cannot_be_an_endpoint() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_doc(services=[{"name": "s", "host": "x", "port": 0}])
    assert caught.value.violations[0].path == "services.s.port"


def test_compile_does_not_change_the_config() -> None:
    config = load_file(REALISTIC)
    before = config.model_dump_json()
    compile_gateway(config, NodeSettings())
    assert config.model_dump_json() == before


# --------------------------------------------------------------------------- node settings


def test_default_listeners() -> None:
    listeners = NodeSettings().listeners
    assert [(lis.address, lis.port, lis.protocol) for lis in listeners] == [
        ("127.0.0.1", 8000, "http"),
        ("127.0.0.1", 8443, "https"),
    ]


def test_proxy_listen_parsing() -> None:
    listeners = parse_proxy_listen(
        "0.0.0.0:80 reuseport backlog=16384, [::]:443 ssl http2 proxy_protocol, *:9000, 8001"
    )
    assert [(lis.address, lis.port, lis.protocol, lis.backlog) for lis in listeners] == [
        ("0.0.0.0", 80, "http", 16384),
        ("::", 443, "https", 2048),
        ("0.0.0.0", 9000, "http", 2048),
        ("0.0.0.0", 8001, "http", 2048),
    ]
    assert len({lis.name for lis in listeners}) == 4
    assert parse_proxy_listen("off") == ()


def test_proxy_listen_errors_name_each_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_proxy_listen("0.0.0.0:8000 bogus, example.com:80, 0.0.0.0:99999, 0.0.0.0:1 backlog=x")
    assert [v.path for v in caught.value.violations] == [
        "proxy_listen[0]", "proxy_listen[1]", "proxy_listen[2]", "proxy_listen[3]",
    ]  # fmt: skip
