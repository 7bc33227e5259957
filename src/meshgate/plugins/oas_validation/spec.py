"""An OpenAPI 3.0/3.1 document compiled for request validation (once per snapshot; cached
by document text and options).

Paths become matchers (literal paths in a dict, templated ones as regexes, literal before
templated, as OpenAPI says); each operation gets its parameters (path-level merged with
operation-level) with compiled JSON Schema validators (jsonschema-rs: Draft 4 for OAS 3.0
with ``nullable`` turned into a ``null`` type, Draft 2020-12 for 3.1) and the validator of
its JSON request body.  Local ``$ref``s (``#/components/...``) resolve against the
document's ``components``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema_rs
import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_TEMPLATE = re.compile(r"\{([^{}/]+)\}")


class SpecError(ValueError):
    """The document is not an OpenAPI 3 document this plugin can use."""


Validator = Any  # a jsonschema_rs validator


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: str  # path | query | header | cookie
    required: bool
    validator: Validator | None
    kind: str | None  # the schema's type (for coercing strings)
    item_kind: str | None  # array item type
    explode: bool


@dataclass(slots=True)
class Operation:
    method: str
    path: str
    params: list[Param] = field(default_factory=list)
    body_required: bool = False
    body_types: dict[str, Validator | None] = field(default_factory=dict)  # media type -> validator
    query_names: frozenset[str] = frozenset()
    header_names: frozenset[str] = frozenset()


@dataclass(slots=True)
class CompiledSpec:
    exact: dict[str, dict[str, Operation]]
    templated: list[tuple[re.Pattern[str], list[str], dict[str, Operation]]]
    needs_body: bool

    def find(self, path: str) -> tuple[dict[str, Operation], dict[str, str]] | None:
        ops = self.exact.get(path)
        if ops is not None:
            return ops, {}
        for pattern, names, ops in self.templated:
            found = pattern.match(path)
            if found is not None:
                return ops, {n: unquote(v) for n, v in zip(names, found.groups(), strict=True)}
        return None


def _nullable_to_type(node: Any) -> Any:
    """OAS 3.0 schema → JSON Schema Draft 4 (``nullable: true`` → ``type: [t, "null"]``)."""
    if isinstance(node, list):
        return [_nullable_to_type(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_type(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _load(text: str, encoded: bool) -> dict[str, Any]:
    if encoded:
        text = unquote(text)
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"not valid JSON or YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise SpecError("not an OpenAPI document (expected an object)")
    version = str(doc.get("openapi", ""))
    if not version.startswith("3."):
        if "swagger" in doc:
            raise SpecError("Swagger 2.0 documents are not supported; use OpenAPI 3.0 or 3.1")
        raise SpecError("missing or unsupported 'openapi' version (3.0.x or 3.1.x)")
    if not isinstance(doc.get("paths"), dict):
        raise SpecError("missing 'paths'")
    return doc


class _Builder:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.v31 = str(doc["openapi"]).startswith("3.1")
        components = doc.get("components") or {}
        self.components = components if self.v31 else _nullable_to_type(components)
        self.make: Callable[[Any], Validator] = (
            jsonschema_rs.Draft202012Validator if self.v31 else jsonschema_rs.Draft4Validator
        )

    def deref(self, node: Any, depth: int = 0) -> Any:
        """A ``$ref``'d parameter/request body object (not schemas: the validator resolves those)."""
        while isinstance(node, dict) and "$ref" in node and depth < 32:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#/"):
                raise SpecError(f"unsupported $ref {ref!r} (only local references)")
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise SpecError(f"unresolvable $ref {ref!r}")
                target = target[part]
            node, depth = target, depth + 1
        return node

    def validator(self, schema: Any, where: str) -> Validator | None:
        if schema is None:
            return None
        if not isinstance(schema, dict | bool):
            raise SpecError(f"{where}: schema must be an object")
        if isinstance(schema, bool):
            schema = {} if schema else {"not": {}}
        body = dict(schema if self.v31 else _nullable_to_type(schema))
        body["components"] = self.components
        try:
            return self.make(body)
        except (ValueError, jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError) as exc:
            first = str(exc).splitlines()[0]
            raise SpecError(f"{where}: invalid schema: {first}") from None

    def kind_of(self, schema: Any) -> tuple[str | None, str | None]:
        schema = self.deref(schema) if isinstance(schema, dict) else None
        if not isinstance(schema, dict):
            return None, None
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), None)
        item_kind = None
        if kind == "array":
            item_kind, _ = self.kind_of(schema.get("items"))
        return kind if isinstance(kind, str) else None, item_kind

    def param(self, raw: Any, where: str) -> Param:
        raw = self.deref(raw)
        if not isinstance(raw, dict) or "name" not in raw or "in" not in raw:
            raise SpecError(f"{where}: a parameter needs 'name' and 'in'")
        location = raw["in"]
        schema = raw.get("schema")
        if schema is None and isinstance(raw.get("content"), dict) and raw["content"]:
            schema = next(iter(raw["content"].values())).get("schema")
        kind, item_kind = self.kind_of(schema)
        name = str(raw["name"])
        return Param(
            name=name.lower() if location == "header" else name,
            where=location,
            required=bool(raw.get("required", location == "path")),
            validator=self.validator(schema, f"{where} parameter '{name}'"),
            kind=kind,
            item_kind=item_kind,
            explode=bool(raw.get("explode", raw.get("style", _default_style(location)) == "form")),
        )

    def operation(
        self, method: str, path: str, item: dict[str, Any], raw: dict[str, Any]
    ) -> Operation:
        where = f"{method.upper()} {path}"
        params: dict[tuple[str, str], Param] = {}
        for source in (item.get("parameters") or [], raw.get("parameters") or []):
            for p in source:
                compiled = self.param(p, where)
                params[(compiled.where, compiled.name)] = compiled
        op = Operation(method.upper(), path, list(params.values()))
        body = self.deref(raw.get("requestBody"))
        if isinstance(body, dict):
            op.body_required = bool(body.get("required", False))
            for media, content in (body.get("content") or {}).items():
                schema = content.get("schema") if isinstance(content, dict) else None
                json_like = "json" in media.lower()
                op.body_types[media.lower()] = (
                    self.validator(schema, f"{where} request body") if json_like else None
                )
        op.query_names = frozenset(p.name for p in op.params if p.where == "query")
        op.header_names = frozenset(p.name for p in op.params if p.where == "header")
        return op


def _default_style(location: str) -> str:
    return "form" if location in ("query", "cookie") else "simple"


def _base_path(doc: dict[str, Any], include: bool, custom: str | None) -> str:
    if custom:
        return "/" + custom.strip("/") if custom.strip("/") else ""
    if include:
        servers = doc.get("servers") or []
        if servers and isinstance(servers[0], dict):
            path = urlsplit(str(servers[0].get("url", ""))).path.rstrip("/")
            return path if path.startswith("/") or not path else "/" + path
    return ""


@functools.lru_cache(maxsize=64)
def compile_spec(
    text: str, *, encoded: bool = True, include_base_path: bool = False,
    custom_base_path: str | None = None,
) -> CompiledSpec:  # fmt: skip
    doc = _load(text, encoded)
    builder = _Builder(doc)
    base = _base_path(doc, include_base_path, custom_base_path)
    exact: dict[str, dict[str, Operation]] = {}
    templated: list[tuple[int, int, re.Pattern[str], list[str], dict[str, Operation]]] = []
    needs_body = False
    for path, item in doc["paths"].items():
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, dict):
            raise SpecError(f"path {path!r}: must start with '/' and hold an object")
        item = builder.deref(item)
        ops: dict[str, Operation] = {}
        for method in METHODS:
            raw = item.get(method)
            if isinstance(raw, dict):
                op = ops[method.upper()] = builder.operation(method, path, item, raw)
                needs_body = needs_body or any(v is not None for v in op.body_types.values())
        full = base + path
        names = _TEMPLATE.findall(full)
        if not names:
            exact[full] = ops
            continue
        pattern = "".join(
            re.escape(piece) if i % 2 == 0 else "([^/]+)"
            for i, piece in enumerate(_TEMPLATE.split(full))
        )
        templated.append((len(names), -len(full), re.compile(pattern + r"\Z"), names, ops))
    templated.sort(key=lambda t: (t[0], t[1]))
    return CompiledSpec(exact, [(p, n, o) for _, _, p, n, o in templated], needs_body)
