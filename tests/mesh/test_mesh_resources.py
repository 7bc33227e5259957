"""Mesh resources and policies: what loads, and every violation with its field path."""

from __future__ import annotations

import pytest

from meshgate.errors import ConfigError
from meshgate.policies import default_resources, parse_resource, parse_resources
from meshgate.resources.mesh import Dataplane, Mesh, Policy, duration_ms


def violations(doc: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_resource(doc)
    return caught.value.to_fields()


@pytest.mark.parametrize(
    ("text", "ms"),
    [("0", 0), ("250ms", 250), ("5s", 5000), ("1m30s", 90000), ("24h", 86_400_000), ("1.5s", 1500)],
)
def test_durations(text: str, ms: int) -> None:
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "5x", "s", "1h 2m", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        duration_ms(text)


def test_mesh_loads_kuma_shapes() -> None:
    mesh = parse_resource(
        {
            "type": "Mesh",
            "name": "default",
            "mtls": {
                "enabledBackend": "ca-1",
                "backends": [
                    {
                        "name": "ca-1",
                        "type": "builtin",
                        "mode": "PERMISSIVE",
                        "dpCert": {"rotation": {"expiration": "2h"}},
                        "conf": {"caCert": {"RSAbits": 2048, "expiration": "1y"}},
                    }
                ],
            },
        }
    )
    assert isinstance(mesh, Mesh)
    assert mesh.mtls_enabled
    assert mesh.mtls_mode == "permissive"
    backend = mesh.enabled_backend()
    assert backend is not None
    assert backend.workload_ttl_ms == 7_200_000
    assert backend.root_ttl_ms == 365 * 86_400_000
    plain = parse_resource({"type": "Mesh", "name": "plain"})
    assert isinstance(plain, Mesh)
    assert not plain.mtls_enabled


def test_mesh_violations() -> None:
    assert violations(
        {
            "type": "Mesh",
            "name": "Bad_Name!",
            "mtls": {
                "enabledBackend": "nope",
                "mode": "sometimes",
                "backends": [
                    {"name": "a", "type": "provided"},
                    {"name": "b", "type": "vault"},
                ],
            },
        }
    ) == {
        "name": "invalid name 'Bad_Name!': expected lower-case alphanumerics, '-', '_' or '.', "
        "starting and ending with an alphanumeric",
        "mtls.mode": "Input should be 'strict' or 'permissive'",
        "mtls.backends[0].conf.cert": "required for a provided CA",
        "mtls.backends[0].conf.key": "required for a provided CA",
        "mtls.backends[1].type": "Input should be 'builtin' or 'provided'",
    }
    assert violations(
        {"type": "Mesh", "name": "m", "mtls": {"enabledBackend": "x", "backends": []}}
    ) == {"mtls.enabledBackend": "no backend named 'x'"}


def test_dataplane_loads_and_derives() -> None:
    dataplane = parse_resource(
        {
            "type": "Dataplane",
            "mesh": "default",
            "name": "web-1",
            "networking": {
                "address": "10.0.0.1",
                "inbound": [
                    {"port": 8000, "tags": {"kuma.io/service": "web", "kuma.io/protocol": "http"}},
                    {
                        "port": 8001,
                        "servicePort": 81,
                        "protocol": "kafka",
                        "tags": {"kuma.io/service": "k"},
                    },
                    {"port": 8002, "tags": {"kuma.io/service": "web"}, "health": {"ready": False}},
                ],
                "outbound": [{"port": 10000, "tags": {"kuma.io/service": "redis"}}],
            },
        }
    )
    assert isinstance(dataplane, Dataplane)
    first, second, third = dataplane.networking.inbound
    assert (first.effective_protocol, first.app_port, first.service_address) == (
        "http",
        8000,
        "127.0.0.1",
    )
    assert (second.effective_protocol, second.app_port) == ("kafka", 81)
    assert first.serving
    assert not third.serving
    assert dataplane.services() == ["web", "k"]
    assert dataplane.networking.outbound[0].address == "127.0.0.1"


def test_dataplane_violations_have_paths() -> None:
    assert violations(
        {
            "type": "Dataplane",
            "name": "dp",
            "networking": {
                "address": "10.0.0.1",
                "inbound": [
                    {"port": 8000, "tags": {"kuma.io/service": "a"}},
                    {"port": 8000, "tags": {"kuma.io/service": "b"}},
                ],
                "outbound": [{"port": 10000, "tags": {"x": "y"}}],
            },
        }
    ) == {
        "networking.outbound[0].tags": "tag 'kuma.io/service' is required",
    }
    assert violations(
        {
            "type": "Dataplane",
            "name": "dp",
            "networking": {
                "address": "10.0.0.1",
                "inbound": [
                    {"port": 8000, "tags": {"kuma.io/service": "a"}},
                    {"port": 8000, "tags": {"kuma.io/service": "b"}},
                ],
                "outbound": [
                    {"port": 8000, "address": "10.0.0.1", "tags": {"kuma.io/service": "c"}}
                ],
            },
        }
    ) == {
        "networking.inbound[1].port": "port also used by inbound[0]",
        "networking.outbound[0].port": "port also used by inbound[0]",
    }
    assert violations(
        {"type": "Dataplane", "name": "dp", "spec": {"networking": {"inbound": [{"port": 0}]}}}
    ) == {
        "spec.networking.address": "required field missing",
        "spec.networking.inbound[0].port": "Input should be greater than or equal to 1",
        "spec.networking.inbound[0].tags": "required field missing",
    }


def test_every_policy_error_is_reported_with_its_path() -> None:
    found = violations(
        {
            "type": "MeshHTTPRoute",
            "name": "r",
            "spec": {
                "targetRef": {"kind": "MeshService"},
                "to": [
                    {
                        "targetRef": {"kind": "Mesh"},
                        "rules": [
                            {
                                "matches": [
                                    {"path": {"type": "Exact", "value": "no-slash"}},
                                    {"path": {"type": "RegularExpression", "value": "("}},
                                    {"headers": [{"type": "Present", "name": "x", "value": "v"}]},
                                ],
                                "default": {
                                    "filters": [{"type": "RequestHeaderModifier"}],
                                    "backendRefs": [
                                        {"kind": "MeshService", "name": "a", "weight": -1}
                                    ],
                                },
                            }
                        ],
                    }
                ],
            },
        }
    )
    assert found == {
        "spec.targetRef.name": "required for kind MeshService",
        "spec.to[0].rules[0].matches[0].path.value": "must start with '/'",
        "spec.to[0].rules[0].matches[1].path": "invalid regular expression: missing ), "
        "unterminated subpattern at position 0",
        "spec.to[0].rules[0].matches[2].headers[0].value": "not allowed for type Present",
        "spec.to[0].rules[0].default.filters[0].requestHeaderModifier": "required for type "
        "RequestHeaderModifier",
        "spec.to[0].rules[0].default.backendRefs[0].weight": "Input should be greater than or "
        "equal to 0",
    }


def test_kinds_are_checked_per_level() -> None:
    found = violations(
        {
            "type": "MeshTimeout",
            "name": "t",
            "spec": {
                "targetRef": {"kind": "MeshHTTPRoute", "name": "x"},
                "to": [{"targetRef": {"kind": "MeshSubset", "tags": {"a": "b"}}, "default": {}}],
                "from": [
                    {
                        "targetRef": {"kind": "MeshService", "name": "s"},
                        "default": {"idleTimeout": "soon"},
                    }
                ],
            },
        }
    )
    assert found == {
        "spec.from[0].default.idleTimeout": "invalid duration 'soon': expected e.g. 500ms, 5s, 1m30s, 24h",
    }
    found = violations(
        {
            "type": "MeshTimeout",
            "name": "t",
            "spec": {
                "targetRef": {"kind": "MeshHTTPRoute", "name": "x"},
                "to": [{"targetRef": {"kind": "MeshSubset", "tags": {"a": "b"}}, "default": {}}],
                "from": [{"targetRef": {"kind": "MeshService", "name": "s"}, "default": {}}],
            },
        }
    )
    assert found == {
        "spec.targetRef.kind": "must be one of Mesh, Dataplane, MeshSubset, MeshService, MeshServiceSubset "
        "here, not MeshHTTPRoute",
        "spec.to[0].targetRef.kind": "must be one of Mesh, MeshService here, not MeshSubset",
        "spec.from[0].targetRef.kind": "must be one of Mesh here, not MeshService",
    }
    assert violations({"type": "MeshRetry", "name": "r", "spec": {}}) == {
        "spec.to": "required field missing"
    }
    assert violations({"type": "MeshTimeout", "name": "r", "spec": {}}) == {
        "spec": "at least one to or from item is required"
    }


def test_dataplane_target_ref_fields() -> None:
    found = violations(
        {
            "type": "MeshTrafficPermission",
            "name": "p",
            "spec": {
                "targetRef": {"kind": "Dataplane", "name": "dp-1", "labels": {"app": "x"}},
                "from": [
                    {
                        "targetRef": {"kind": "Mesh", "labels": {"a": "b"}},
                        "default": {"action": "Allow"},
                    }
                ],
            },
        }
    )
    assert found == {
        "spec.targetRef.labels": "give either name or labels",
        "spec.from[0].targetRef.labels": "not allowed for kind Mesh",
    }


def test_envelope_errors_and_unknown_types() -> None:
    assert violations({"type": "MeshFoo", "name": "x", "spec": {}}) == {
        "type": "unknown policy type; one of MeshCircuitBreaker, MeshHTTPRoute, "
        "MeshHealthCheck, MeshRetry, MeshTimeout, MeshTrafficPermission"
    }
    assert violations({"name": "x"}) == {"type": "required field missing"}
    found = violations(
        {
            "type": "MeshTrafficPermission",
            "name": "UPPER",
            "extra": 1,
            "spec": {"from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Maybe"}}]},
        }
    )
    assert found == {
        "name": "invalid name 'UPPER': expected lower-case alphanumerics, '-', '_' or '.', "
        "starting and ending with an alphanumeric",
        "extra": "unknown field",
        "spec.from[0].default.action": "Input should be 'Allow', 'Deny' or 'AllowWithShadowDeny'",
    }


def test_multi_document_text_reports_each_document() -> None:
    text = """
type: Mesh
name: ok
---
type: MeshRetry
name: r
mesh: ok
spec: {to: [{targetRef: {kind: Mesh}, default: {http: {retryOn: [Sometimes]}}}]}
---
type: Dataplane
name: dp
networking: {address: 1.2.3.4, inbound: [{port: 1, tags: {}}]}
"""
    with pytest.raises(ConfigError) as caught:
        parse_resources(text)
    fields = caught.value.to_fields()
    assert set(fields) == {
        "[1].spec.to[0].default.http.retryOn",
        "[2].networking.inbound[0].tags",
    }
    assert "unknown retry condition 'Sometimes'" in fields["[1].spec.to[0].default.http.retryOn"]


def test_policy_round_trips_to_its_document() -> None:
    doc = {
        "type": "MeshTrafficPermission",
        "name": "p",
        "mesh": "m",
        "spec": {
            "targetRef": {"kind": "MeshService", "name": "a"},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}],
        },
    }
    policy = parse_resource(doc)
    assert isinstance(policy, Policy)
    assert policy.to_document() == doc
    assert parse_resource(policy.to_document()) == policy


def test_default_resources_of_a_new_mesh() -> None:
    mesh = parse_resource({"type": "Mesh", "name": "m"})
    assert isinstance(mesh, Mesh)
    names = [(p.type, p.name, p.mesh) for p in default_resources(mesh)]
    assert names == [
        ("MeshTrafficPermission", "allow-all-m", "m"),
        ("MeshTimeout", "mesh-timeout-all-m", "m"),
        ("MeshRetry", "mesh-retry-all-m", "m"),
        ("MeshCircuitBreaker", "mesh-circuit-breaker-all-m", "m"),
    ]
    skipping = parse_resource(
        {
            "type": "Mesh",
            "name": "m",
            "skipCreatingInitialPolicies": ["MeshRetry", "mesh-timeout-all-m"],
        }
    )
    assert isinstance(skipping, Mesh)
    assert [p.type for p in default_resources(skipping)] == [
        "MeshTrafficPermission",
        "MeshCircuitBreaker",
    ]
    none = parse_resource({"type": "Mesh", "name": "m", "skipCreatingInitialPolicies": ["*"]})
    assert isinstance(none, Mesh)
    assert default_resources(none) == []
