"""Mesh policies, one package each (``api.py`` spec + validation, ``compile.py`` → snapshot).

This module is the registry of policy types and the loader that knows all of them:

* ``SPEC_TYPES``: policy type name → spec model;
* ``parse_resource(doc)`` / ``parse_resources(text)``: validated ``Mesh``, ``Dataplane`` and
  policy resources, every violation with its field path (``ConfigError``);
* ``default_resources(mesh)``: the policies a new mesh starts with.
"""

from __future__ import annotations

from typing import Any, Literal

from meshgate.errors import ConfigError
from meshgate.policies import (
    mesh_circuit_breaker,
    mesh_health_check,
    mesh_http_route,
    mesh_retry,
    mesh_timeout,
    mesh_traffic_permission,
)
from meshgate.policies.mesh_circuit_breaker.api import MeshCircuitBreakerSpec
from meshgate.policies.mesh_health_check.api import MeshHealthCheckSpec
from meshgate.policies.mesh_http_route.api import MeshHTTPRouteSpec
from meshgate.policies.mesh_retry.api import MeshRetrySpec
from meshgate.policies.mesh_timeout.api import MeshTimeoutSpec
from meshgate.policies.mesh_traffic_permission.api import MeshTrafficPermissionSpec
from meshgate.resources.mesh.documents import (
    MeshResource,
    parse_document,
    parse_documents,
    split_documents,
)
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import Policy, PolicySpec

SPEC_TYPES: dict[str, type[PolicySpec]] = {
    mesh_traffic_permission.api.TYPE: MeshTrafficPermissionSpec,
    mesh_http_route.api.TYPE: MeshHTTPRouteSpec,
    mesh_timeout.api.TYPE: MeshTimeoutSpec,
    mesh_retry.api.TYPE: MeshRetrySpec,
    mesh_health_check.api.TYPE: MeshHealthCheckSpec,
    mesh_circuit_breaker.api.TYPE: MeshCircuitBreakerSpec,
}


def parse_resource(doc: Any) -> MeshResource:
    """One validated resource (``ConfigError`` lists every violation with its path)."""
    return parse_document(doc, SPEC_TYPES)


def parse_resources(text: str, fmt: Literal["yaml", "json"] = "yaml") -> list[MeshResource]:
    """Every resource of a YAML (``---``-separated) or JSON text, all validated together."""
    return parse_documents(split_documents(text, fmt), SPEC_TYPES)


def default_resources(mesh: Mesh) -> list[Policy]:
    """What a new mesh starts with, minus those ``skipCreatingInitialPolicies`` names.

    * ``allow-all-<mesh>``: MeshTrafficPermission allowing every client (delete it for
      default-deny);
    * ``mesh-timeout-all-<mesh>``, ``mesh-retry-all-<mesh>``,
      ``mesh-circuit-breaker-all-<mesh>``: Kuma's defaults (connect 5s, idle 1h, request
      15s, stream idle 30m; 5 retries of 16s with 25-250ms back-off, 5 TCP connect attempts;
      1024 connections/pending/requests, 3 retries in flight).

    ``skipCreatingInitialPolicies: ['*']`` skips all; otherwise list type names
    (``MeshTrafficPermission``) or policy names.
    """
    documents: list[dict[str, Any]] = [
        {
            "type": "MeshTrafficPermission",
            "name": f"allow-all-{mesh.name}",
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "from": [{"targetRef": {"kind": "Mesh"}, "default": {"action": "Allow"}}],
            },
        },
        {
            "type": "MeshTimeout",
            "name": f"mesh-timeout-all-{mesh.name}",
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": _DEFAULT_TIMEOUTS}],
                "from": [{"targetRef": {"kind": "Mesh"}, "default": _DEFAULT_TIMEOUTS}],
            },
        },
        {
            "type": "MeshRetry",
            "name": f"mesh-retry-all-{mesh.name}",
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "to": [
                    {
                        "targetRef": {"kind": "Mesh"},
                        "default": {
                            "tcp": {"maxConnectAttempt": 5},
                            "http": {
                                "numRetries": 5,
                                "perTryTimeout": "16s",
                                "backOff": {"baseInterval": "25ms", "maxInterval": "250ms"},
                            },
                        },
                    }
                ],
            },
        },
        {
            "type": "MeshCircuitBreaker",
            "name": f"mesh-circuit-breaker-all-{mesh.name}",
            "spec": {
                "targetRef": {"kind": "Mesh"},
                "to": [
                    {
                        "targetRef": {"kind": "Mesh"},
                        "default": {
                            "connectionLimits": {
                                "maxConnections": 1024,
                                "maxPendingRequests": 1024,
                                "maxRequests": 1024,
                                "maxRetries": 3,
                            }
                        },
                    }
                ],
            },
        },
    ]
    skip = set(mesh.skip_creating_initial_policies)
    if "*" in skip:
        return []
    chosen: list[Policy] = []
    for doc in documents:
        if doc["type"] in skip or doc["name"] in skip:
            continue
        resource = parse_resource({**doc, "mesh": mesh.name})
        if not isinstance(resource, Policy):  # pragma: no cover - the documents are policies
            raise ConfigError.single("default resources must be policies")
        chosen.append(resource)
    return chosen


_DEFAULT_TIMEOUTS = {
    "connectionTimeout": "5s",
    "idleTimeout": "1h",
    "http": {"requestTimeout": "15s", "streamIdleTimeout": "30m"},
}

__all__ = ["SPEC_TYPES", "default_resources", "parse_resource", "parse_resources"]
