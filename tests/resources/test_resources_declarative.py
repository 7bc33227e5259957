"""Kong declarative files: loading, nesting, references, uniqueness, errors, dump round-trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import resources_certs as certs
import yaml

from meshgate.errors import ConfigError
from meshgate.resources import GatewayConfig, dump_dict, dump_yaml, load_dict, load_file, load_text
from meshgate.resources.kong import stable_id

REALISTIC = Path(__file__).parent / "data" / "kong-realistic.yaml"


def violations_of(document: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        load_dict(document)
    return {v.path: v.message for v in caught.value.violations}


def doc(**sections: Any) -> dict[str, Any]:
    return {"_format_version": "3.0", **sections}


# --------------------------------------------------------------------------- the realistic file


def test_realistic_file_loads_with_everything_resolved() -> None:
    cfg = load_file(REALISTIC)
    services = {s.name: s for s in cfg.services}
    routes = {r.name: r for r in cfg.routes}
    assert routes["orders-by-id"].service == services["orders-api"].id
    assert routes["health"].service is None
    assert services["orders-api"].port == 8080
    assert services["orders-api"].path == "/api"
    assert services["legacy"].enabled is False
    assert routes["greeter"].strip_path is False  # grpc routes default to false
    assert services["billing"].ca_certificates == ("4a0e8a66-66c5-4c9a-8f2c-2a5b6f0b7c11",)
    consumers = {c.username: c for c in cfg.consumers}
    scoped = [p for p in cfg.plugins if p.service and p.consumer]
    assert [(p.name, p.service, p.consumer) for p in scoped] == [
        ("rate-limiting", services["orders-api"].id, consumers["mobile-app"].id)
    ]
    acl = next(p for p in cfg.plugins if p.name == "acl")
    assert acl.route == routes["orders-by-id"].id
    assert {t.target for t in cfg.targets} == {
        "10.10.0.11:8443", "10.10.0.12:8443", "billing-3.internal:8443",
    }  # fmt: skip
    assert {s.name for s in cfg.snis} == {"billing.example.com", "*.billing.example.com"}
    assert all(s.certificate == cfg.certificates[0].id for s in cfg.snis)
    assert (
        consumers["mobile-app"].credentials["keyauth_credentials"][0]["key"]
        == "mobile-app-secret-key"
    )


def test_loading_is_deterministic() -> None:
    assert load_file(REALISTIC) == load_file(REALISTIC)
    assert load_file(REALISTIC).model_dump_json() == load_file(REALISTIC).model_dump_json()


def test_every_entity_has_an_id_and_created_at() -> None:
    cfg = load_file(REALISTIC)
    for kind in ("services", "routes", "upstreams", "targets", "consumers", "plugins",
                 "certificates", "snis", "ca_certificates"):  # fmt: skip
        for entity in getattr(cfg, kind):
            assert entity.id is not None, (kind, entity)
            assert entity.created_at is not None, (kind, entity)
    for consumer in cfg.consumers:
        for records in consumer.credentials.values():
            assert all(isinstance(r["id"], str) for r in records)


# --------------------------------------------------------------------------- ids, timestamps


def test_named_entities_get_uuid5_ids_independent_of_position() -> None:
    one = load_dict(doc(services=[{"name": "a", "host": "x"}, {"name": "b", "host": "y"}]))
    two = load_dict(doc(services=[{"name": "b", "host": "y"}, {"name": "a", "host": "x"}]))
    ids_one = {s.name: s.id for s in one.services}
    assert ids_one == {s.name: s.id for s in two.services}
    assert ids_one["a"] == stable_id("services", "a")


def test_explicit_ids_are_kept_and_normalised() -> None:
    cfg = load_dict(doc(services=[{"id": "2F1B5B0E-5D0E-4D8B-9B4A-3E0B8A6D3C11", "host": "x"}]))
    assert cfg.services[0].id == "2f1b5b0e-5d0e-4d8b-9b4a-3e0b8a6d3c11"


def test_created_at_defaults_to_file_order_per_kind() -> None:
    cfg = load_dict(
        doc(
            services=[{"name": "s", "host": "x", "routes": [{"name": "r1", "paths": ["/1"]}]}],
            routes=[
                {"name": "r2", "paths": ["/2"], "created_at": 1700000000},
                {"name": "r3", "paths": ["/3"]},
            ],
        )
    )
    assert [(r.name, r.created_at, r.updated_at) for r in cfg.routes] == [
        ("r1", 1, 1),
        ("r3", 3, 3),
        ("r2", 1700000000, 1700000000),
    ]


# --------------------------------------------------------------------------- nesting vs references


def test_nested_and_top_level_forms_load_equal() -> None:
    nested = doc(
        services=[
            {
                "name": "s",
                "host": "u",
                "routes": [{"name": "r", "paths": ["/"], "plugins": [{"name": "cors"}]}],
                "plugins": [{"name": "key-auth"}],
            }
        ],
        upstreams=[{"name": "u", "targets": [{"target": "10.0.0.1"}]}],
        consumers=[{"username": "c", "plugins": [{"name": "acl", "config": {"allow": ["g"]}}]}],
        certificates=[
            {"cert": (pem := certs.leaf(("a.com",))).cert, "key": pem.key, "snis": ["a.com"]}
        ],
    )
    cfg_nested = load_dict(nested)
    cert_id = cfg_nested.certificates[0].id
    flat = doc(
        services=[{"name": "s", "host": "u"}],
        routes=[{"name": "r", "paths": ["/"], "service": {"name": "s"}}],
        plugins=[
            {"name": "cors", "route": "r", "created_at": 1},
            {"name": "key-auth", "service": "s", "created_at": 2},
            {"name": "acl", "consumer": "c", "config": {"allow": ["g"]}, "created_at": 3},
        ],
        upstreams=[{"name": "u"}],
        targets=[{"target": "10.0.0.1:8000", "upstream": "u"}],
        consumers=[{"username": "c"}],
        certificates=[{"cert": pem.cert, "key": pem.key}],
        snis=[{"name": "a.com", "certificate": {"id": cert_id}}],
    )
    assert load_dict(flat) == cfg_nested


def test_references_by_id_resolve() -> None:
    service_id = "2f1b5b0e-5d0e-4d8b-9b4a-3e0b8a6d3c11"
    cfg = load_dict(
        doc(
            services=[{"id": service_id, "name": "s", "host": "x"}],
            routes=[{"paths": ["/"], "service": service_id.upper()}],
        )
    )
    assert cfg.routes[0].service == service_id


def test_top_level_credentials_join_their_consumer() -> None:
    cfg = load_dict(
        doc(
            consumers=[{"username": "c", "keyauth_credentials": [{"key": "a"}]}],
            keyauth_credentials=[{"key": "b", "consumer": "c"}],
            acls=[{"group": "admins", "consumer": {"username": "c"}}],
        )
    )
    credentials = cfg.consumers[0].credentials
    assert sorted(r["key"] for r in credentials["keyauth_credentials"]) == ["a", "b"]
    assert credentials["acls"][0]["group"] == "admins"
    assert "consumer" not in credentials["acls"][0]


def test_meta_keys_are_accepted_and_ignored() -> None:
    cfg = load_dict(
        {
            "_format_version": "1.1",
            "_transform": False,
            "_comment": "hello",
            "_workspace": "default",
            "_info": {"select_tags": ["a"]},
            "_konnect": {"control_plane_name": "x"},
            "services": [{"host": "x", "_comment": "inline", "_ignore": ["anything"]}],
        }
    )
    assert cfg.transform is False
    assert len(cfg.services) == 1


@pytest.mark.parametrize("version", ["1.1", "2.1", "3.0", 3.0])
def test_accepted_format_versions(version: Any) -> None:
    load_dict({"_format_version": version})


def test_json_and_yaml_text() -> None:
    document = doc(services=[{"name": "s", "url": "http://x"}])
    from_json = load_text(json.dumps(document), "json")
    assert from_json == load_text(yaml.safe_dump(document))


# --------------------------------------------------------------------------- violations


def test_many_errors_are_all_reported_with_their_paths() -> None:
    document = doc(
        services=[
            {
                "name": "s",
                "host": "x",
                "port": 99999,
                "routes": [
                    {"name": "r0", "paths": ["/ok"]},
                    {"name": "r1", "paths": ["/ok", "bad"]},
                ],
            },
            {"name": "s", "host": "y"},
        ],
        upstreams=[
            {"name": "u0"},
            {"name": "u1"},
            {
                "name": "u2",
                "healthchecks": {"active": {"timeout": -5}},
                "targets": [{"target": "a b"}],
            },
        ],
        routes=[{"name": "r2", "paths": ["/x"], "service": "nope", "headers": {"Host": ["h"]}}],
        consumers=[{"tags": ["ok"]}],
        plugins=[{"name": "cors", "route": "r0"}, {"name": "cors", "route": "r0"}],
        bogus=[],
    )
    found = violations_of(document)
    expected = {
        "services[0].port",
        "services[0].routes[1].paths[1]",
        "services[1].name",
        "upstreams[2].healthchecks.active.timeout",
        "upstreams[2].targets[0].target",
        "routes[0].service",
        "routes[0].headers.Host",
        "consumers[0]",
        "plugins[1].name",
        "bogus",
    }
    assert set(found) == expected, found
    assert "no such entry in 'services'" in found["routes[0].service"]
    assert "already used by services[0]" in found["services[1].name"]
    assert "already configured" in found["plugins[1].name"]
    assert found["bogus"] == "unknown field"


def test_config_error_lists_violations_in_message_and_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        load_dict(doc(services=[{"host": "x", "port": "eighty"}]))
    assert "services[0].port" in str(caught.value)
    assert "services[0].port" in caught.value.to_fields()


@pytest.mark.parametrize(
    ("document", "path", "fragment"),
    [
        ({}, "_format_version", "required field missing"),
        ({"_format_version": "4.0"}, "_format_version", "expected one of"),
        ({"_format_version": "3.0", "_transform": "yes"}, "_transform", "boolean"),
        (doc(vaults=[]), "vaults", "not supported"),
        (doc(services={"name": "x"}), "services", "expected an array"),
        (doc(services=["x"]), "services[0]", "expected a record"),
        (
            doc(
                services=[{"name": "s", "host": "x", "routes": [{"paths": ["/"], "service": "s"}]}]
            ),
            "services[0].routes[0].service",
            "nested",
        ),
        (doc(targets=[{"target": "a"}]), "targets[0].upstream", "required field missing"),
        (
            doc(targets=[{"target": "a", "upstream": "nope"}]),
            "targets[0].upstream",
            "no such entry",
        ),
        (
            doc(snis=[{"name": "a.com", "certificate": "2f1b5b0e-5d0e-4d8b-9b4a-3e0b8a6d3c11"}]),
            "snis[0].certificate",
            "no such entry in 'certificates'",
        ),
        (doc(plugins=[{"name": "x", "consumer": "ghost"}]), "plugins[0].consumer", "no such entry"),
        (
            doc(
                services=[
                    {
                        "url": "https://x",
                        "ca_certificates": ["2f1b5b0e-5d0e-4d8b-9b4a-3e0b8a6d3c11"],
                    }
                ]
            ),
            "services[0].ca_certificates[0]",
            "no such entry in 'ca_certificates'",
        ),
        (
            doc(consumers=[{"username": "a"}, {"username": "a"}]),
            "consumers[1].username",
            "uniqueness",
        ),
        (
            doc(
                consumers=[{"username": "a", "custom_id": "1"}, {"username": "b", "custom_id": "1"}]
            ),
            "consumers[1].custom_id",
            "uniqueness",
        ),
        (doc(upstreams=[{"name": "u"}, {"name": "u"}]), "upstreams[1].name", "uniqueness"),
        (
            doc(routes=[{"name": "r", "paths": ["/"]}, {"name": "r", "paths": ["/"]}]),
            "routes[1].name",
            "uniqueness",
        ),
        (
            doc(plugins=[{"name": "a", "instance_name": "i"}, {"name": "b", "instance_name": "i"}]),
            "plugins[1].instance_name",
            "uniqueness",
        ),
        (
            doc(
                services=[
                    {"id": "2f1b5b0e-5d0e-4d8b-9b4a-3e0b8a6d3c11", "host": "x"},
                    {"id": "2f1b5b0e-5d0e-4d8b-9b4a-3e0b8a6d3c11", "host": "y"},
                ]
            ),
            "services[1].id",
            "uniqueness",
        ),
        (
            doc(
                consumers=[
                    {"username": "a", "keyauth_credentials": [{"key": "k"}]},
                    {"username": "b", "keyauth_credentials": [{"key": "k"}]},
                ]
            ),
            "consumers[1].keyauth_credentials[0].key",
            "uniqueness",
        ),
        (
            doc(keyauth_credentials=[{"key": "k"}]),
            "keyauth_credentials[0].consumer",
            "required field missing",
        ),
        (
            doc(consumers=[{"username": "a", "acls": [{"group": "g", "id": "nope"}]}]),
            "consumers[0].acls[0].id",
            "UUID",
        ),
    ],
)
def test_document_rejections(document: dict[str, Any], path: str, fragment: str) -> None:
    found = violations_of(document)
    assert path in found, found
    assert fragment in found[path], found[path]


def test_sni_names_are_unique_across_certificates() -> None:
    one, two = certs.leaf(("a.com",)), certs.leaf(("b.com",))
    found = violations_of(
        doc(
            certificates=[
                {"cert": one.cert, "key": one.key, "snis": ["a.com"]},
                {"cert": two.cert, "key": two.key, "snis": [{"name": "a.com"}]},
            ]
        )
    )
    assert "certificates[1].snis[0].name" in found


def test_reference_to_an_invalid_entity_is_not_reported_twice() -> None:
    found = violations_of(
        doc(services=[{"name": "s", "host": "bad host"}], routes=[{"paths": ["/"], "service": "s"}])
    )
    assert set(found) == {"services[0].host"}


def test_invalid_parent_does_not_hide_child_errors() -> None:
    found = violations_of(
        doc(services=[{"name": "s", "host": "bad host", "routes": [{"paths": ["nope"]}]}])
    )
    assert set(found) == {"services[0].host", "services[0].routes[0].paths[0]"}


def test_syntax_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="invalid YAML at line 3"):
        load_text("_format_version: '3.0'\nservices: [\n")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_text("{", "json")
    with pytest.raises(ConfigError, match="expected a record"):
        load_text("- a\n- b\n")


def test_duplicate_targets_are_kept_with_distinct_ids() -> None:
    cfg = load_dict(
        doc(
            upstreams=[
                {"name": "u", "targets": [{"target": "a:1", "weight": 5}, {"target": "a:1"}]}
            ]
        )
    )
    assert len(cfg.targets) == 2
    assert len({t.id for t in cfg.targets}) == 2


# --------------------------------------------------------------------------- dump


def _round_trip(cfg: GatewayConfig) -> GatewayConfig:
    return load_dict(dump_dict(cfg))


def test_dump_round_trips_the_realistic_file() -> None:
    cfg = load_file(REALISTIC)
    assert _round_trip(cfg) == cfg
    assert load_text(dump_yaml(cfg)) == cfg


def test_dump_round_trips_a_reordered_flat_file() -> None:
    original = load_dict(
        doc(
            routes=[
                {"name": "late", "paths": ["/"], "service": "s"},
                {"name": "free", "paths": ["/f"]},
            ],
            plugins=[
                {"name": "cors", "route": "late", "service": "s"},
                {"name": "prometheus"},
                {"name": "acl", "consumer": "c", "config": {"allow": ["x"]}},
            ],
            services=[{"name": "s", "url": "https://x:8443"}],
            consumers=[{"custom_id": "c-1", "username": "c"}],
            upstreams=[
                {"name": "u", "targets": [{"target": "::1"}, {"target": "::1", "weight": 1}]}
            ],
        )
    )
    assert _round_trip(original) == original


def test_dump_shape_is_kong_3() -> None:
    dumped = dump_dict(load_file(REALISTIC))
    assert dumped["_format_version"] == "3.0"
    orders = next(s for s in dumped["services"] if s["name"] == "orders-api")
    assert {r["name"] for r in orders["routes"]} == {"orders-list", "orders-by-id"}
    assert all("service" not in r for r in orders["routes"])
    assert {p["name"] for p in orders["plugins"]} == {"key-auth", "rate-limiting"}
    by_id = next(r for r in orders["routes"] if r["name"] == "orders-by-id")
    assert {p["name"] for p in by_id["plugins"]} == {"request-transformer", "acl"}
    assert [r["name"] for r in dumped["routes"]] == ["health"]
    assert len(dumped["upstreams"][0]["targets"]) == 3
    assert {s["name"] for s in dumped["certificates"][0]["snis"]} == {
        "billing.example.com", "*.billing.example.com",
    }  # fmt: skip
    top = {p["name"] for p in dumped["plugins"]}
    assert top == {"prometheus", "correlation-id", "rate-limiting"}
    assert "keyauth_credentials" in dumped["consumers"][0]


def test_dump_does_not_mutate_and_is_stable() -> None:
    cfg = load_file(REALISTIC)
    first = dump_dict(cfg)
    snapshot_of_first = copy.deepcopy(first)
    assert dump_dict(cfg) == snapshot_of_first
    assert dump_yaml(cfg) == dump_yaml(load_file(REALISTIC))


def test_loading_does_not_mutate_the_document() -> None:
    document = yaml.safe_load(REALISTIC.read_text())
    before = copy.deepcopy(document)
    load_dict(document)
    assert document == before
