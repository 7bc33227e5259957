"""Flat entity documents (rows of the config store, as the Admin API shows them) ⇄ ``GatewayConfig``.

A flat document is one entity with its references as ``{"id": ...}`` records — a route's
``service``, a target's ``upstream``, a credential's ``consumer`` — under a type named as in
declarative files (``services``, ``keyauth_credentials`` …).  ``config_from_entities`` runs the
same validation and linking as a declarative file, so a config built from the store is checked
exactly like one loaded from YAML; its violations are located by entity id
(``routes[<id>].paths[0]``) since rows have no position in a file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from meshgate.errors import ConfigError, Violation
from meshgate.resources.declarative import load_dict
from meshgate.resources.gateway_config import GatewayConfig
from meshgate.resources.kong_consumers import CREDENTIAL_KINDS

ENTITY_TYPES: tuple[str, ...] = (
    "certificates", "ca_certificates", "snis", "services", "routes", "upstreams", "targets",
    "consumers", *CREDENTIAL_KINDS, "plugins",
)  # fmt: skip
"""Every gateway entity type, in an order where referenced entities come first."""

REFERENCE_FIELDS: dict[str, tuple[str, ...]] = {
    "services": ("client_certificate",),
    "routes": ("service",),
    "upstreams": ("client_certificate",),
    "targets": ("upstream",),
    "plugins": ("route", "service", "consumer"),
    "snis": ("certificate",),
}
"""Fields holding a reference, per type (credentials also reference their ``consumer``)."""

_LOCATED = re.compile(r"^([a-z_]+)\[(\d+)\]")


class FlatEntity(Protocol):
    """A stored entity: its type and its document (``meshgate.store.Entity`` fits)."""

    @property
    def type(self) -> str: ...

    @property
    def doc(self) -> Mapping[str, Any]: ...


def config_from_entities(
    entities: Iterable[FlatEntity | tuple[str, Mapping[str, Any]]],
    *,
    transform: bool = False,
    now: float | None = None,
) -> GatewayConfig:
    """Validate and link flat entity documents into a ``GatewayConfig``.

    Types that are not gateway entities are skipped (the store may hold other resources).
    ``transform`` is the config's ``_transform`` flag: False by default because the Admin API
    stores credential secrets already hashed.  Raises ``ConfigError`` with every violation.
    """
    sections: dict[str, list[dict[str, Any]]] = {}
    ids: dict[str, list[str]] = {}
    for item in entities:
        entity_type, doc = item if isinstance(item, tuple) else (item.type, item.doc)
        if entity_type not in ENTITY_TYPES:
            continue
        record = dict(doc)
        if entity_type in CREDENTIAL_KINDS:
            record = {key: value for key, value in record.items() if value is not None}
        sections.setdefault(entity_type, []).append(record)
        ids.setdefault(entity_type, []).append(str(doc.get("id")))
    document: dict[str, Any] = {"_format_version": "3.0", "_transform": transform, **sections}
    try:
        return load_dict(document, now=now)
    except ConfigError as exc:
        raise ConfigError([relocate(violation, ids) for violation in exc.violations]) from None


def relocate(violation: Violation, ids: Mapping[str, list[str]]) -> Violation:
    """``routes[3].paths[0]`` → ``routes[<id of the 4th route>].paths[0]`` (``ids``: per type,
    the ids in the order the documents were given)."""
    match = _LOCATED.match(violation.path)
    if match is None:
        return violation
    kind, index = match.group(1), int(match.group(2))
    known = ids.get(kind, [])
    if index >= len(known):
        return violation
    return Violation(f"{kind}[{known[index]}]{violation.path[match.end() :]}", violation.message)


def entities_from_config(config: GatewayConfig) -> list[tuple[str, dict[str, Any]]]:
    """Every entity of ``config`` as ``(type, flat document)``, referenced entities first.

    Credentials leave their consumer's ``credentials`` map and become entities of their own
    kind with a ``consumer`` reference; every field is written, defaults included.
    """
    flat: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ENTITY_TYPES}
    for kind in ("certificates", "ca_certificates", "snis", "services", "routes", "upstreams",
                 "targets", "consumers", "plugins"):  # fmt: skip
        for model in getattr(config, kind):
            doc = model.model_dump(mode="json")
            for field in REFERENCE_FIELDS.get(kind, ()):
                doc[field] = {"id": doc[field]} if doc.get(field) else None
            if kind == "consumers":
                for credential_kind, records in doc.pop("credentials").items():
                    for record in records:
                        flat[credential_kind].append({**record, "consumer": {"id": model.id}})
            flat[kind].append(doc)
    return [(kind, doc) for kind in ENTITY_TYPES for doc in flat[kind]]
