"""Turning a request body plus its URL into a validated mesh resource (or every violation).

The URL decides the resource's ``type`` (from the collection), ``name`` and ``mesh``; the
body may omit them, and must agree with the URL where it gives them.
"""

from __future__ import annotations

import json
from typing import Any

from meshgate.controlplane.mesh_api.errors import ApiError, invalid
from meshgate.errors import ConfigError, Violation
from meshgate.policies import parse_resource
from meshgate.resources.mesh.documents import MeshResource


def body_document(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw or b"null")
    except ValueError as exc:
        raise ApiError(400, "Could not parse the body", f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid([Violation("", "expected a JSON object")])
    return doc


def resource_from(doc: dict[str, Any], kind: str, name: str, mesh: str | None) -> MeshResource:
    """Validate ``doc`` as a ``kind`` named ``name`` in ``mesh`` (None: a Mesh)."""
    problems: list[Violation] = []
    expected: dict[str, str] = {"type": kind, "name": name}
    if mesh is not None:
        expected["mesh"] = mesh
    elif "mesh" in doc:
        if doc["mesh"] != name:
            problems.append(Violation("mesh", "a Mesh has no mesh field"))
        doc = {k: v for k, v in doc.items() if k != "mesh"}
    for field, value in expected.items():
        given = doc.get(field)
        if given is None:
            doc = {**doc, field: value}
        elif given != value:
            problems.append(Violation(field, f"must be '{value}' (as in the URL), not '{given}'"))
    try:
        resource = parse_resource(doc)
    except ConfigError as exc:
        problems += exc.violations
        raise invalid(problems) from None
    if problems:
        raise invalid(problems)
    return resource
