"""Kong declarative configuration (``kong.yml``): load into a ``GatewayConfig``, dump back.

Loading accepts ``_format_version`` "1.1", "2.1" and "3.0", YAML or JSON, nested or top-level
entities with references by name or id, and reports *every* problem at once as a
``ConfigError`` whose violations carry field paths such as ``services[0].routes[1].paths[0]``.
See ``declarative_link`` for how missing ids and timestamps are derived (deterministically).

Dumping writes a Kong 3.0 document: routes nested under their service, plugins nested under
the one entity they are scoped to (top-level when global or scoped to several), targets under
their upstream, SNIs under their certificate, credentials under their consumer; ids and
timestamps always written, fields at their default left out.  ``load_dict(dump_dict(c)) == c``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel

from meshgate.errors import ConfigError, Violation
from meshgate.resources.declarative_link import link
from meshgate.resources.declarative_walk import walk_document
from meshgate.resources.gateway_config import GatewayConfig
from meshgate.resources.kong import SNI, Target

T = TypeVar("T")

FORMAT_VERSION = "3.0"


# --------------------------------------------------------------------------- load


def load_dict(data: Any, *, now: float | None = None) -> GatewayConfig:
    """Validate a parsed declarative document; ``now`` (epoch s) pins CA expiry checks."""
    context: dict[str, Any] = {} if now is None else {"now": now}
    walk = walk_document(data, context)
    # Linking runs even after entity-level errors, so reference and uniqueness problems are
    # reported in the same pass; it returns None whenever any violation was found.
    config = link(walk)
    if config is None:
        raise ConfigError(walk.violations)
    return config


def load_text(
    text: str, fmt: Literal["yaml", "json"] = "yaml", *, now: float | None = None
) -> GatewayConfig:
    """Parse and validate a declarative document given as text (YAML also reads JSON)."""
    return load_dict(parse_text(text, fmt), now=now)


def load_file(path: str | os.PathLike[str], *, now: float | None = None) -> GatewayConfig:
    """Read, parse and validate a declarative file (``.json`` as JSON, anything else YAML).

    ``OSError`` from reading propagates; everything about the content is a ``ConfigError``.
    """
    file = Path(path)
    fmt: Literal["yaml", "json"] = "json" if file.suffix.lower() == ".json" else "yaml"
    return load_text(file.read_text(encoding="utf-8"), fmt, now=now)


def parse_text(text: str, fmt: Literal["yaml", "json"]) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                [Violation("", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")]
            ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1} column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Violation("", f"invalid YAML{where}: {problem}")]) from None


# --------------------------------------------------------------------------- dump


def _fields(model: BaseModel, *drop: str) -> dict[str, Any]:
    data = model.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    for name in ("id", "created_at", "updated_at"):
        value = getattr(model, name, None)
        if value is not None:
            data[name] = value
    for name in drop:
        data.pop(name, None)
    return data


def dump_dict(config: GatewayConfig) -> dict[str, Any]:
    """A Kong 3.0 declarative document describing ``config``."""
    plugins_of: dict[tuple[str, str], list[dict[str, Any]]] = {}
    top_plugins: list[dict[str, Any]] = []
    for plugin in config.plugins:
        scopes = [
            (f, getattr(plugin, f)) for f in ("route", "service", "consumer") if getattr(plugin, f)
        ]
        if len(scopes) == 1:
            plugins_of.setdefault(scopes[0], []).append(_fields(plugin, scopes[0][0]))
        else:
            top_plugins.append(_fields(plugin))

    def with_plugins(data: dict[str, Any], field: str, entity_id: str | None) -> dict[str, Any]:
        nested = plugins_of.get((field, entity_id or ""))
        return {**data, "plugins": nested} if nested else data

    def route_dict(route: Any) -> dict[str, Any]:
        return with_plugins(_fields(route, "service"), "route", route.id)

    out: dict[str, Any] = {"_format_version": FORMAT_VERSION}
    if not config.transform:
        out["_transform"] = False
    routes_of = group_by(config.routes, "service")
    targets_of = group_by(config.targets, "upstream")
    snis_of = group_by(config.snis, "certificate")
    services = []
    for service in config.services:
        data = with_plugins(_fields(service), "service", service.id)
        routes = [route_dict(r) for r in routes_of.get(service.id, [])]
        services.append({**data, "routes": routes} if routes else data)
    sections: dict[str, list[dict[str, Any]]] = {
        "services": services,
        "routes": [route_dict(r) for r in routes_of.get(None, [])],
        "upstreams": [_upstream_dict(u, targets_of) for u in config.upstreams],
        "consumers": [_consumer_dict(c, plugins_of) for c in config.consumers],
        "plugins": top_plugins,
        "certificates": [_certificate_dict(c, snis_of) for c in config.certificates],
        "ca_certificates": [_fields(ca) for ca in config.ca_certificates],
    }
    out.update({key: value for key, value in sections.items() if value})
    return out


def group_by(entities: Iterable[T], field: str) -> dict[str | None, list[T]]:
    """Entities keyed by the value of one of their (reference) fields, order kept."""
    groups: dict[str | None, list[T]] = {}
    for entity in entities:
        groups.setdefault(getattr(entity, field), []).append(entity)
    return groups


def _upstream_dict(upstream: Any, targets_of: dict[str | None, list[Target]]) -> dict[str, Any]:
    data = _fields(upstream)
    targets = [_fields(t, "upstream") for t in targets_of.get(upstream.id, [])]
    return {**data, "targets": targets} if targets else data


def _consumer_dict(
    consumer: Any, plugins_of: dict[tuple[str, str], list[dict[str, Any]]]
) -> dict[str, Any]:
    data = _fields(consumer, "credentials")
    for kind, records in consumer.credentials.items():
        data[kind] = [dict(record) for record in records]
    nested = plugins_of.get(("consumer", consumer.id))
    return {**data, "plugins": nested} if nested else data


def _certificate_dict(certificate: Any, snis_of: dict[str | None, list[SNI]]) -> dict[str, Any]:
    data = _fields(certificate)
    snis = [_fields(s, "certificate") for s in snis_of.get(certificate.id, [])]
    return {**data, "snis": snis} if snis else data


class _BlockStyleDumper(yaml.SafeDumper):
    """Multi-line strings (PEM) as ``|`` blocks, so dumped files stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def dump_yaml(config: GatewayConfig) -> str:
    """``dump_dict`` as YAML text."""
    return yaml.dump(
        dump_dict(config), Dumper=_BlockStyleDumper, sort_keys=False, allow_unicode=True
    )
