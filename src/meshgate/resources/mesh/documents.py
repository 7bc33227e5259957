"""Reading mesh resource documents: ``Mesh`` and ``Dataplane`` here, policies via a registry.

``parse_document`` validates one parsed document (a mapping with ``type``); policy types are
resolved through the ``spec_types`` registry the caller passes (``meshgate.policies`` owns
it).  ``split_documents`` parses YAML (several ``---`` documents, or a list) or JSON text.
Every problem becomes a ``Violation`` with its field path; with several documents the path
starts with the document's index (``[2].spec.to[0].targetRef.kind``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from meshgate.errors import ConfigError, Violation
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import Policy, PolicySpec, parse_policy
from meshgate.resources.violations import violations_from

MeshResource = Mesh | Dataplane | Policy


def parse_document(
    doc: Any, spec_types: Mapping[str, type[PolicySpec]], prefix: str = ""
) -> MeshResource:
    """One validated resource; ``ConfigError`` with every violation otherwise.

    ``Mesh`` and ``Dataplane`` use Kuma's Universal shape (fields beside ``type``); a
    ``spec`` wrapper around those fields is accepted too.
    """
    if not isinstance(doc, Mapping):
        raise ConfigError([Violation(prefix, "expected a mapping with a 'type' field")])
    kind = doc.get("type")
    models: dict[str, type[Mesh] | type[Dataplane]] = {"Mesh": Mesh, "Dataplane": Dataplane}
    model = models.get(str(kind))
    if model is None:
        if kind is None:
            raise ConfigError([Violation(_join(prefix, "type"), "required field missing")])
        return parse_policy(doc, spec_types, prefix)
    flat = dict(doc)
    spec_prefix = prefix
    if isinstance(flat.get("spec"), Mapping):
        spec = flat.pop("spec")
        flat.update(spec)
        spec_prefix = _join(prefix, "spec")
    try:
        return model.model_validate(flat)
    except ValidationError as exc:
        violations = violations_from(exc, "")
        in_spec = {"type", "name", "mesh", "labels"}
        raise ConfigError(
            [
                Violation(
                    _join(prefix if v.path.split(".")[0] in in_spec else spec_prefix, v.path),
                    v.message,
                )
                for v in violations
            ]
        ) from None


def split_documents(text: str, fmt: Literal["yaml", "json"] = "yaml") -> list[Any]:
    """The documents in ``text``: YAML ``---`` documents (a top-level list is flattened)."""
    try:
        if fmt == "json":
            loaded: list[Any] = [json.loads(text)]
        else:
            loaded = [d for d in yaml.safe_load_all(text) if d is not None]
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([Violation("", f"cannot parse {fmt}: {exc}")]) from None
    docs: list[Any] = []
    for item in loaded:
        docs.extend(item if isinstance(item, list) else [item])
    return docs


def parse_documents(
    docs: list[Any], spec_types: Mapping[str, type[PolicySpec]]
) -> list[MeshResource]:
    """Every document validated; one ``ConfigError`` with the violations of all of them."""
    resources: list[MeshResource] = []
    violations: list[Violation] = []
    many = len(docs) > 1
    for index, doc in enumerate(docs):
        try:
            resources.append(parse_document(doc, spec_types, f"[{index}]" if many else ""))
        except ConfigError as exc:
            violations += exc.violations
    if violations:
        raise ConfigError(violations)
    return resources


def resource_key(resource: MeshResource) -> tuple[str, str, str]:
    """``(type, mesh, name)``: what identifies a resource (a Mesh's mesh is its name)."""
    if isinstance(resource, Mesh):
        return ("Mesh", resource.name, resource.name)
    return (resource.type, resource.mesh, resource.name)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}"
