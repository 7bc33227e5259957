"""Kong-format entity schemas (``GET /schemas/{entity}``), derived from the pydantic models.

Kong describes an entity as ``{"fields": [{"<name>": {"type": ..., "default": ...}}, ...]}``;
decK reads these to fill defaults into the file it compares with the gateway, so every default
here is exactly the one the model applies.  Kong leaves some collections without a default
(route ``methods``, ``tags`` …): those get none here either.
"""

from __future__ import annotations

import inspect
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from meshgate.controlplane.admin_api.registry import EntitySpec

# Kong types these collections as sets (unordered, no duplicates).
_SET_FIELDS = frozenset(
    {"protocols", "methods", "hosts", "paths", "snis", "tags", "ca_certificates"}
)
_AUTO_FIELDS = {
    "id": {"type": "string", "uuid": True, "auto": True},
    "created_at": {"type": "integer", "timestamp": True, "auto": True},
    "updated_at": {"type": "integer", "timestamp": True, "auto": True},
}


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """Strip ``Annotated`` and ``| None``; returns (type, nullable)."""
    nullable = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [arg for arg in get_args(annotation) if arg is not type(None)]
            nullable = nullable or len(args) < len(get_args(annotation))
            if len(args) != 1:
                return Any, nullable
            annotation = args[0]
        else:
            return annotation, nullable


def kong_type(annotation: Any, name: str = "") -> dict[str, Any]:
    """The Kong schema descriptor of a Python type (without default/required)."""
    annotation, _nullable = _unwrap(annotation)
    origin = get_origin(annotation)
    if origin is Literal:
        values = list(get_args(annotation))
        return {**_scalar(type(values[0])), "one_of": values}
    if origin in (tuple, list):
        kind = "set" if name in _SET_FIELDS else "array"
        return {"type": kind, "elements": kong_type(get_args(annotation)[0])}
    if origin is dict:
        key_type, value_type = get_args(annotation)
        return {"type": "map", "keys": kong_type(key_type), "values": kong_type(value_type)}
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return {"type": "record", "fields": model_fields(annotation)}
    return _scalar(annotation)


def _scalar(python_type: Any) -> dict[str, Any]:
    if python_type is bool:
        return {"type": "boolean"}
    if python_type is int:
        return {"type": "integer"}
    if python_type is float:
        return {"type": "number"}
    if python_type is str:
        return {"type": "string"}
    return {"type": "any"}


def _default(info: FieldInfo) -> Any:
    factory = info.default_factory
    value = factory() if factory is not None else info.default  # type: ignore[call-arg]
    if value is PydanticUndefined or value is None or isinstance(value, BaseModel):
        return PydanticUndefined
    if isinstance(value, tuple | list | dict) and not value:
        return PydanticUndefined
    return list(value) if isinstance(value, tuple) else value


def field_schema(name: str, info: FieldInfo) -> dict[str, Any]:
    if name in _AUTO_FIELDS:
        return dict(_AUTO_FIELDS[name])
    schema = kong_type(info.annotation, name)
    default = _default(info)
    if default is not PydanticUndefined:
        schema["default"] = default
    schema["required"] = info.is_required()
    return schema


def model_fields(
    model: type[BaseModel], skip: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    return [
        {name: field_schema(name, info)}
        for name, info in model.model_fields.items()
        if name not in skip
    ]


def entity_schema(spec: EntitySpec) -> dict[str, Any]:
    """``GET /schemas/{entity}``."""
    fields = model_fields(spec.model, spec.dropped_fields)
    for entry in fields:
        (name, descriptor), *_ = entry.items()
        ref = spec.reference(name)
        if ref is not None:
            entry[name] = {
                "type": "foreign",
                "reference": ref.target,
                "on_delete": ref.on_delete,
                "required": descriptor.get("required", False),
            }
    schema: dict[str, Any] = {"name": spec.store_type, "primary_key": ["id"], "fields": fields}
    if spec.endpoint_key is not None:
        schema["endpoint_key"] = spec.endpoint_key
    return schema


def plugin_schema(spec: EntitySpec, plugin_name: str) -> dict[str, Any]:
    """``GET /schemas/plugins/{name}``: the plugin entity with an open ``config`` record.

    Per-plugin config schemas arrive with the plugin runtime; until then ``config`` accepts
    any fields and has no defaults.
    """
    schema = entity_schema(spec)
    for entry in schema["fields"]:
        if "config" in entry:
            entry["config"] = {"type": "record", "required": True, "fields": []}
        if "name" in entry:
            entry["name"] = {"type": "string", "required": True, "one_of": [plugin_name]}
    schema["name"] = plugin_name
    return schema


def array_fields(spec: EntitySpec) -> frozenset[str]:
    """Top-level fields that hold lists (a lone form value for one of them becomes a list)."""
    found = {"snis"} if "snis" in spec.transient_fields else set()
    for name, info in spec.model.model_fields.items():
        annotation, _ = _unwrap(info.annotation)
        if get_origin(annotation) in (tuple, list):
            found.add(name)
    return frozenset(found)
