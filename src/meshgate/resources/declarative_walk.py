"""First pass over a Kong declarative document: find every entity, validate it, locate errors.

The walk un-nests entities (services→routes→plugins, upstreams→targets, certificates→snis …),
remembers where each one sits in the file (``services[0].routes[1]``) and which parent its
nesting implies, and validates each one against its model.  Problems never stop the walk:
each becomes a :class:`~meshgate.errors.Violation` located by field path, pydantic's error
locations translated to the same path syntax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from meshgate.errors import Violation
from meshgate.resources.kong import (
    SNI,
    CACertificate,
    Certificate,
    Consumer,
    Plugin,
    Route,
    Service,
    Target,
    Upstream,
)
from meshgate.resources.kong_consumers import CREDENTIAL_KINDS, credential_problems
from meshgate.resources.violations import join_path, violations_from

ENTITY_MODELS: dict[str, type[BaseModel]] = {
    "services": Service,
    "routes": Route,
    "upstreams": Upstream,
    "targets": Target,
    "consumers": Consumer,
    "plugins": Plugin,
    "certificates": Certificate,
    "snis": SNI,
    "ca_certificates": CACertificate,
}
# parent kind -> {nested collection key: foreign-key field the nesting sets on the child}
NESTED: dict[str, dict[str, str]] = {
    "services": {"routes": "service", "plugins": "service"},
    "routes": {"plugins": "route"},
    "consumers": {"plugins": "consumer"},
    "upstreams": {"targets": "upstream"},
    "certificates": {"snis": "certificate"},
}
META_KEYS = frozenset(
    {"_format_version", "_transform", "_comment", "_ignore", "_info", "_workspace", "_konnect"}
)
FORMAT_VERSIONS = ("1.1", "2.1", "3.0")
# Kong entities meshgate does not (yet) load; named so the error says so.
UNSUPPORTED_KINDS = frozenset(
    {"vaults", "keys", "key_sets", "consumer_groups", "partials", "filter_chains", "workspaces"}
)
_IGNORED_ENTITY_KEYS = ("_comment", "_ignore")


@dataclass(eq=False)
class Entry:
    """One entity found in the document."""

    kind: str  # collection name ("services", …) or a credential kind ("keyauth_credentials", …)
    path: str
    raw: dict[str, Any]
    position: int  # 1-based order of appearance among entries of the same kind
    parent: Entry | None = None
    parent_field: str | None = None  # foreign key implied by nesting (``service`` …)
    model: Any = None  # the validated model (credentials: the checked record); None if invalid


@dataclass
class Walk:
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    transform: bool = True

    def add(self, path: str, message: str) -> None:
        self.violations.append(Violation(path, message))


def walk_document(data: Any, context: dict[str, Any]) -> Walk:
    """Find, un-nest and validate every entity of a parsed declarative document."""
    walk = Walk()
    if not isinstance(data, dict):
        walk.add("", "expected a record (a mapping at the top of the file)")
        return walk
    _check_meta(data, walk)
    for key, value in data.items():
        if key in META_KEYS:
            continue
        if key in ENTITY_MODELS or key in CREDENTIAL_KINDS:
            _walk_collection(walk, key, value, key, None, None, context)
        elif key in UNSUPPORTED_KINDS:
            walk.add(key, f"entity type '{key}' is not supported by meshgate")
        else:
            walk.add(key, "unknown field")
    return walk


def _check_meta(data: dict[str, Any], walk: Walk) -> None:
    version = data.get("_format_version")
    if version is None:
        walk.add("_format_version", "required field missing")
    else:
        if isinstance(version, float):  # an unquoted ``3.0`` in YAML
            version = str(version)
        if version not in FORMAT_VERSIONS:
            accepted = ", ".join(f"'{v}'" for v in FORMAT_VERSIONS)
            walk.add("_format_version", f"expected one of: {accepted}")
    transform = data.get("_transform", True)
    if not isinstance(transform, bool):
        walk.add("_transform", "expected a boolean")
    else:
        walk.transform = transform
    workspace = data.get("_workspace")
    if workspace is not None and not isinstance(workspace, str):
        walk.add("_workspace", "expected a string")
    info = data.get("_info")
    if info is not None and not isinstance(info, dict):
        walk.add("_info", "expected a record")


def _walk_collection(
    walk: Walk,
    kind: str,
    items: Any,
    path: str,
    parent: Entry | None,
    parent_field: str | None,
    context: dict[str, Any],
) -> None:
    if items is None:
        return
    if not isinstance(items, list):
        walk.add(path, "expected an array")
        return
    for index, item in enumerate(items):
        item_path = f"{path}[{index}]"
        if kind == "snis" and isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict):
            walk.add(item_path, "expected a record")
            continue
        raw = {k: v for k, v in item.items() if k not in _IGNORED_ENTITY_KEYS}
        nested = {key: raw.pop(key) for key in list(raw) if key in NESTED.get(kind, {})}
        siblings = walk.entries.setdefault(kind, [])
        entry = Entry(kind, item_path, raw, len(siblings) + 1, parent, parent_field)
        siblings.append(entry)
        if parent_field is not None and parent_field in raw:
            walk.add(
                f"{item_path}.{parent_field}",
                "must not be set on a nested entity: the enclosing entity sets it",
            )
            raw.pop(parent_field)
        _validate(walk, entry, context)
        for key, children in nested.items():
            child_field = NESTED[kind][key]
            _walk_collection(walk, key, children, f"{item_path}.{key}", entry, child_field, context)


def _validate(walk: Walk, entry: Entry, context: dict[str, Any]) -> None:
    if entry.kind in CREDENTIAL_KINDS:
        record = {k: v for k, v in entry.raw.items() if k != "consumer"}
        problems = credential_problems(entry.kind, record)
        if "consumer" not in entry.raw:
            problems.append((("consumer",), "required field missing"))
        elif not isinstance(entry.raw["consumer"], str | dict):
            problems.append((("consumer",), "expected a reference (a name or an id)"))
        walk.violations += [Violation(join_path(entry.path, loc), msg) for loc, msg in problems]
        entry.model = None if problems else record
        return
    model_class = ENTITY_MODELS[entry.kind]
    try:
        entry.model = model_class.model_validate(entry.raw, context=context)
    except ValidationError as exc:
        walk.violations += violations_from(exc, entry.path)
