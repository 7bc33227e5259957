"""Helpers of the mesh tests: small resource builders and the engine's permission semantics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshgate import snapshot
from meshgate.compiler.mesh_tls import MeshTLSMaterial
from meshgate.policies import parse_resource
from meshgate.resources.mesh import Dataplane, Mesh, Policy

TLS = MeshTLSMaterial("CERT", "KEY", (("ca", "ROOT"),))


def mesh(name: str = "m", mtls: bool = True, mode: str = "strict") -> Mesh:
    doc: dict[str, Any] = {"type": "Mesh", "name": name}
    if mtls:
        doc["mtls"] = {
            "enabledBackend": "ca",
            "mode": mode,
            "backends": [{"name": "ca", "type": "builtin"}],
        }
    resource = parse_resource(doc)
    assert isinstance(resource, Mesh)
    return resource


def dataplane(
    name: str,
    address: str,
    inbounds: Sequence[Mapping[str, Any]] = (),
    outbounds: Sequence[Mapping[str, Any]] = (),
    mesh_name: str = "m",
) -> Dataplane:
    resource = parse_resource(
        {
            "type": "Dataplane",
            "mesh": mesh_name,
            "name": name,
            "networking": {
                "address": address,
                "inbound": list(inbounds),
                "outbound": list(outbounds),
            },
        }
    )
    assert isinstance(resource, Dataplane)
    return resource


def policy(kind: str, name: str, spec: Mapping[str, Any], mesh_name: str = "m") -> Policy:
    resource = parse_resource({"type": kind, "name": name, "mesh": mesh_name, "spec": spec})
    assert isinstance(resource, Policy)
    return resource


def decide(rules: Sequence[snapshot.PermissionRule] | None, client: set[str] | None) -> str:
    """The engine's semantics for ``Listener.permissions`` (first match decides, else deny)."""
    if rules is None:
        return "allow"
    for rule in rules:
        if client is None and rule.identities:
            continue
        if set(rule.identities) <= (client or set()):
            return rule.action
    return "deny"
