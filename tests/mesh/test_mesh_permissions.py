"""MeshTrafficPermission compiled to listener permissions, evaluated as the engine will:
the compiled rules give exactly the merged action for every client."""

from __future__ import annotations

import itertools

import pytest
from mesh_kit import TLS, dataplane, decide, mesh, policy

from meshgate import snapshot
from meshgate.compiler.mesh import compile_dataplane
from meshgate.policies import default_resources, parse_resource
from meshgate.policies.mesh_traffic_permission.compile import permission_rules
from meshgate.resources.mesh import Dataplane
from meshgate.resources.mesh.identity import identities_for_tags
from meshgate.resources.mesh.merge import applicable, merged_from

# --------------------------------------------------------------------------- permissions


PERMISSION_POLICIES = [
    policy(
        "MeshTrafficPermission",
        "mesh-wide",
        {
            "targetRef": {"kind": "Mesh"},
            "from": [
                {"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}},
                {
                    "targetRef": {"kind": "MeshSubset", "tags": {"env": "dev"}},
                    "default": {"action": "Deny"},
                },
            ],
        },
    ),
    policy(
        "MeshTrafficPermission",
        "for-api",
        {
            "targetRef": {"kind": "MeshService", "name": "api"},
            "from": [
                {
                    "targetRef": {"kind": "MeshService", "name": "web"},
                    "default": {"action": "Deny"},
                },
                {
                    "targetRef": {
                        "kind": "MeshServiceSubset",
                        "name": "web",
                        "tags": {"env": "prod"},
                    },
                    "default": {"action": "AllowWithShadowDeny"},
                },
            ],
        },
    ),
]


@pytest.mark.parametrize(
    "client_tags",
    [
        dict(pairs)
        for pairs in itertools.product(
            [("kuma.io/service", "web"), ("kuma.io/service", "batch")],
            [("env", "dev"), ("env", "prod"), ("zone", "eu")],
        )
    ],
    ids=str,
)
def test_permission_rules_give_the_merged_action(client_tags: dict[str, str]) -> None:
    """Evaluating the compiled rules like the engine gives exactly what merging gives."""
    server = dataplane("api-1", "10.0.0.2", [{"port": 2000, "tags": {"kuma.io/service": "api"}}])
    ordered = applicable(
        PERMISSION_POLICIES, "MeshTrafficPermission", server, {"kuma.io/service": "api"}
    )
    rules = permission_rules(ordered, "m")
    merged = merged_from(ordered, client_tags)
    expected = {"Allow": "allow", "Deny": "deny", "AllowWithShadowDeny": "allow_with_shadow_deny"}[
        merged.conf["action"] if merged else "Deny"
    ]
    client_identities = set(identities_for_tags("m", client_tags))
    assert decide(rules, client_identities) == expected


def test_no_permission_policy_denies_everyone_and_plaintext_matches_only_mesh_wide() -> None:
    server = dataplane(
        "api-1",
        "10.0.0.2",
        [{"port": 2000, "protocol": "http", "tags": {"kuma.io/service": "api"}}],
    )
    snap = compile_dataplane(mesh(), server, [server], [], TLS)
    (listener,) = snap.listeners
    assert listener.permissions == ()
    assert decide(listener.permissions, {"spiffe://m/web"}) == "deny"
    allowed = compile_dataplane(
        mesh(mode="permissive"), server, [server], default_resources(mesh()), TLS
    )
    (listener,) = allowed.listeners
    assert listener.mtls == snapshot.ListenerMTLS(
        certificate="mesh-workload", client_cas=("mesh-ca:ca",), mode="permissive"
    )
    assert decide(listener.permissions, None) == "allow"  # plaintext client, allow-all
    assert decide(listener.permissions, {"spiffe://m/web"}) == "allow"


def test_without_mtls_nothing_is_enforced_and_no_tls_is_used() -> None:
    server = dataplane("api-1", "10.0.0.2", [{"port": 2000, "tags": {"kuma.io/service": "api"}}])
    client = dataplane(
        "web-1", "10.0.0.1", [], [{"port": 3000, "tags": {"kuma.io/service": "api"}}]
    )
    plain = mesh(mtls=False)
    snap = compile_dataplane(plain, server, [server, client], [], TLS)
    assert snap.listeners[0].mtls is None
    assert snap.listeners[0].permissions is None
    assert snap.certificates == ()
    assert snap.ca_certificates == ()
    out = compile_dataplane(plain, client, [server, client], [], None)
    (service,) = out.services
    assert (
        service.protocol,
        service.tls_verify,
        service.client_certificate,
        service.tls_peer_ids,
    ) == (
        "tcp",
        None,
        None,
        (),
    )


def test_dataplane_kind_selects_by_labels_or_name() -> None:
    labelled = parse_resource(
        {
            "type": "Dataplane",
            "mesh": "m",
            "name": "pay-1",
            "labels": {"app": "payments"},
            "networking": {
                "address": "10.0.0.2",
                "inbound": [{"port": 2000, "tags": {"kuma.io/service": "payments"}}],
            },
        }
    )
    assert isinstance(labelled, Dataplane)
    unlabelled = dataplane(
        "pay-2", "10.0.0.3", [{"port": 2000, "tags": {"kuma.io/service": "payments"}}]
    )
    deny_by_label = policy(
        "MeshTrafficPermission",
        "by-label",
        {
            "targetRef": {"kind": "Dataplane", "labels": {"app": "payments"}},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Deny"}}],
        },
    )
    by_name = policy(
        "MeshTrafficPermission",
        "by-name",
        {
            "targetRef": {"kind": "Dataplane", "name": "pay-2"},
            "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "AllowWithShadowDeny"}}],
        },
    )
    everyone = [*default_resources(mesh()), deny_by_label, by_name]
    first = compile_dataplane(mesh(), labelled, [labelled, unlabelled], everyone, TLS)
    second = compile_dataplane(mesh(), unlabelled, [labelled, unlabelled], everyone, TLS)
    assert decide(first.listeners[0].permissions, {"spiffe://m/web"}) == "deny"
    assert decide(second.listeners[0].permissions, {"spiffe://m/web"}) == "allow_with_shadow_deny"
