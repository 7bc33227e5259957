"""Mesh compiler semantics beyond the golden files: merging, endpoints, protocols, routes,
shared indexes, errors."""

from __future__ import annotations

import re

import pytest
from mesh_kit import TLS, dataplane, mesh, policy

from meshgate import snapshot
from meshgate.compiler.mesh import compile_dataplane
from meshgate.errors import ConfigError
from meshgate.policies import default_resources
from meshgate.resources.mesh.merge import applicable, json_merge_patch, order_policies

# --------------------------------------------------------------------------- merging


def test_json_merge_patch() -> None:
    target = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "appendX": [1]}
    patch = {"a": {"c": [3], "e": None}, "d": None, "f": {"g": 1}, "appendX": [2]}
    assert json_merge_patch(target, patch) == {
        "a": {"b": 1, "c": [3]},
        "f": {"g": 1},
        "appendX": [1, 2],
    }
    assert target == {"a": {"b": 1, "c": [1, 2]}, "d": 1, "appendX": [1]}
    assert json_merge_patch({"a": 1}, [1]) == [1]


def test_policy_order_kind_then_name_with_smaller_names_winning() -> None:
    spec_mesh = {
        "targetRef": {"kind": "Mesh"},
        "to": [{"targetRef": {"kind": "Mesh"}, "default": {}}],
    }
    spec_service = {**spec_mesh, "targetRef": {"kind": "MeshService", "name": "a"}}
    spec_subset = {**spec_mesh, "targetRef": {"kind": "MeshSubset", "tags": {"x": "y"}}}
    policies = [
        policy("MeshTimeout", "b-service", spec_service),
        policy("MeshTimeout", "a-mesh", spec_mesh),
        policy("MeshTimeout", "z-mesh", spec_mesh),
        policy("MeshTimeout", "subset", spec_subset),
    ]
    assert [p.name for p in order_policies(policies)] == ["z-mesh", "a-mesh", "subset", "b-service"]


def test_to_items_merge_by_specificity_then_policy_order() -> None:
    client = dataplane("c", "10.0.0.1", [{"port": 1000, "tags": {"kuma.io/service": "c"}}])
    specific_first = policy(
        "MeshTimeout",
        "specific",
        {
            "targetRef": {"kind": "MeshService", "name": "c"},
            "to": [
                {
                    "targetRef": {"kind": "MeshService", "name": "d"},
                    "default": {"idleTimeout": "1s"},
                }
            ],
        },
    )
    broad_later = policy(
        "MeshTimeout",
        "broad",
        {
            "targetRef": {"kind": "Mesh"},
            "to": [
                {
                    "targetRef": {"kind": "Mesh"},
                    "default": {"idleTimeout": "9s", "connectionTimeout": "2s"},
                }
            ],
        },
    )
    from meshgate.resources.mesh.merge import merged_to

    ordered = applicable([specific_first, broad_later], "MeshTimeout", client)
    merged = merged_to(ordered, {"kuma.io/service": "d"})
    assert merged is not None
    # the MeshService item outranks the Mesh item even though its policy is broader
    assert merged.conf == {"idleTimeout": "1s", "connectionTimeout": "2s"}
    assert [o.policy for o in merged.origins] == ["broad", "specific"]
    other = merged_to(ordered, {"kuma.io/service": "e"})
    assert other is not None
    assert other.conf == {"idleTimeout": "9s", "connectionTimeout": "2s"}


# --------------------------------------------------------------------------- outbound


def test_endpoints_protocols_and_ignored_inbounds() -> None:
    peers = [
        dataplane(
            "a-1",
            "10.0.0.2",
            [{"port": 2000, "protocol": "http", "tags": {"kuma.io/service": "a"}}],
        ),
        dataplane(
            "a-2",
            "10.0.0.3",
            [
                {
                    "port": 2001,
                    "protocol": "http",
                    "state": "NotReady",
                    "tags": {"kuma.io/service": "a"},
                }
            ],
        ),
        dataplane(
            "a-3",
            "10.0.0.4",
            [
                {
                    "port": 2002,
                    "address": "10.9.9.9",
                    "protocol": "http",
                    "tags": {"kuma.io/service": "a"},
                }
            ],
        ),
        dataplane(
            "mixed-1",
            "10.0.0.5",
            [{"port": 2000, "protocol": "http", "tags": {"kuma.io/service": "mixed"}}],
        ),
        dataplane(
            "mixed-2",
            "10.0.0.6",
            [{"port": 2000, "protocol": "tcp", "tags": {"kuma.io/service": "mixed"}}],
        ),
        dataplane(
            "other-mesh",
            "10.0.0.7",
            [{"port": 2000, "tags": {"kuma.io/service": "a"}}],
            mesh_name="n",
        ),
    ]
    client = dataplane(
        "c",
        "10.0.0.1",
        [{"port": 1000, "state": "Ignored", "tags": {"kuma.io/service": "c"}}],
        [
            {"port": 3000, "tags": {"kuma.io/service": "a"}},
            {"port": 3001, "tags": {"kuma.io/service": "mixed"}},
            {"port": 3002, "tags": {"kuma.io/service": "mixed", "kuma.io/protocol": "http"}},
            {"port": 3003, "tags": {"kuma.io/service": "nobody"}},
        ],
    )
    snap = compile_dataplane(mesh(), client, [client, *peers], [], TLS)
    assert [(ln.name, ln.protocol) for ln in snap.listeners] == [
        ("outbound:127.0.0.1:3000", "http"),
        ("outbound:127.0.0.1:3001", "tcp"),
        ("outbound:127.0.0.1:3002", "http"),
        ("outbound:127.0.0.1:3003", "tcp"),
    ]
    clusters = {c.name: c for c in snap.clusters}
    assert [(e.host, e.port) for e in clusters["mesh:a"].endpoints] == [
        ("10.0.0.2", 2000),
        ("10.9.9.9", 2002),
    ]
    assert clusters["mesh:nobody"].endpoints == ()
    services = {s.id: s for s in snap.services}
    assert services["mesh:a"].protocol == "https"
    assert services["mesh:a"].tls_peer_ids == ("spiffe://m/a",)
    assert services["mesh:a"].client_certificate == "mesh-workload"
    assert services["mesh:a"].ca_certificates == ("mesh-ca:ca",)
    assert services["mesh:mixed"].protocol == "tls"
    tcp_routes = [r for r in snap.routes if r.protocols == ("tcp",)]
    assert {r.listeners[0]: r.service for r in tcp_routes} == {
        "outbound:127.0.0.1:3001": "mesh:mixed",
        "outbound:127.0.0.1:3003": "mesh:nobody",
    }


def test_weighted_split_and_path_semantics() -> None:
    peers = [
        dataplane(
            "v1",
            "10.0.0.2",
            [{"port": 2000, "protocol": "http", "tags": {"kuma.io/service": "a", "version": "v1"}}],
        ),
        dataplane(
            "v2",
            "10.0.0.3",
            [{"port": 2000, "protocol": "http", "tags": {"kuma.io/service": "a", "version": "v2"}}],
        ),
    ]
    client = dataplane("c", "10.0.0.1", [], [{"port": 3000, "tags": {"kuma.io/service": "a"}}])
    route = policy(
        "MeshHTTPRoute",
        "split",
        {
            "to": [
                {
                    "targetRef": {"kind": "MeshService", "name": "a"},
                    "rules": [
                        {
                            "matches": [{"path": {"type": "PathPrefix", "value": "/v2/"}}],
                            "default": {
                                "backendRefs": [
                                    {
                                        "kind": "MeshServiceSubset",
                                        "name": "a",
                                        "tags": {"version": "v1"},
                                        "weight": 90,
                                    },
                                    {
                                        "kind": "MeshServiceSubset",
                                        "name": "a",
                                        "tags": {"version": "v2"},
                                        "weight": 10,
                                    },
                                ]
                            },
                        }
                    ],
                }
            ]
        },
    )
    snap = compile_dataplane(mesh(), client, [client, *peers], [route], TLS)
    split, catch_all = snap.routes
    assert split.backends == (
        snapshot.WeightedBackend(service="mesh:a{version=v1}", weight=90),
        snapshot.WeightedBackend(service="mesh:a{version=v2}", weight=10),
    )
    assert catch_all.paths == ("/",)
    assert catch_all.service == "mesh:a"
    assert split.priority is not None
    assert catch_all.priority is not None
    assert split.priority > catch_all.priority
    clusters = {c.name: [e.host for e in c.endpoints] for c in snap.clusters}
    assert clusters["mesh:a{version=v1}"] == ["10.0.0.2"]
    assert clusters["mesh:a{version=v2}"] == ["10.0.0.3"]

    def matches(path: str) -> bool:  # Kong semantics: "~" = regex anchored at the start
        for pattern in split.paths:
            if pattern.startswith("~"):
                if re.match(pattern[1:], path):
                    return True
            elif path.startswith(pattern):
                return True
        return False

    assert matches("/v2")
    assert matches("/v2/")
    assert matches("/v2/x")
    assert not matches("/v2x")
    assert not matches("/v")


def test_inputs_that_do_not_fit_are_rejected() -> None:
    other = dataplane("x", "10.0.0.1", mesh_name="n")
    with pytest.raises(ConfigError) as caught:
        compile_dataplane(mesh(), other, [], [], None)
    assert caught.value.to_fields() == {
        "mesh": "dataplane is in mesh 'n'",
        "mtls": "the mesh has mTLS on but no TLS material was given",
    }


def test_a_shared_index_gives_the_same_snapshots_and_follows_policy_changes() -> None:
    from meshgate.compiler.mesh_index import build_mesh_index

    peers = [
        dataplane(
            f"a-{i}",
            f"10.0.0.{i + 2}",
            [{"port": 2000, "protocol": "http", "tags": {"kuma.io/service": "a"}}],
        )
        for i in range(3)
    ]
    clients = [
        dataplane(f"c-{i}", f"10.0.1.{i}", [], [{"port": 3000, "tags": {"kuma.io/service": "a"}}])
        for i in range(3)
    ]
    everyone = [*peers, *clients]
    index = build_mesh_index("m", everyone)
    before = default_resources(mesh())
    shared = [compile_dataplane(mesh(), c, everyone, before, TLS, index=index) for c in clients]
    alone = [compile_dataplane(mesh(), c, everyone, before, TLS) for c in clients]
    assert shared == alone
    assert len(index.memo) == 1  # three clients, one destination computed once
    timeout = policy(
        "MeshTimeout",
        "short",
        {
            "to": [
                {
                    "targetRef": {"kind": "MeshService", "name": "a"},
                    "default": {"connectionTimeout": "1s"},
                }
            ]
        },
    )
    after = compile_dataplane(mesh(), clients[0], everyone, [*before, timeout], TLS, index=index)
    (service,) = after.services
    assert service.connect_timeout_ms == 1000
    assert shared[0].services[0].connect_timeout_ms == 5000
