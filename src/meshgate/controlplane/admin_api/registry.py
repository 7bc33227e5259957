"""The Admin API's entity registry: what each Kong entity is called, keyed and linked by.

One :class:`EntitySpec` per entity type says its URL collection, its store type (the
declarative name, so the store's rows build a ``GatewayConfig`` directly), its model, its
endpoint key (what ``/{collection}/{key}`` may name besides the id), its references (and what
deleting the referenced entity does), its unique keys and the nested URLs it appears under.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from meshgate.resources.kong import (
    SNI,
    CACertificate,
    Certificate,
    Consumer,
    KongEntity,
    Plugin,
    Route,
    Service,
    Target,
    Upstream,
)
from meshgate.resources.kong_credentials import CREDENTIAL_MODELS
from meshgate.resources.kong_upstreams import normalize_target
from meshgate.store import composite_key

OnDelete = Literal["cascade", "restrict"]


@dataclass(frozen=True, slots=True)
class Reference:
    """A foreign key: ``field`` holds ``{"id": ...}`` of a ``target`` entity."""

    field: str
    target: str
    on_delete: OnDelete


@dataclass(frozen=True, slots=True)
class EntitySpec:
    store_type: str
    path: str
    model: type[KongEntity]
    endpoint_key: str | None = None
    references: tuple[Reference, ...] = ()
    nested_path: str | None = None  # credentials: the segment under /consumers/{c}/
    millis: bool = False  # targets keep timestamps with millisecond precision
    has_updated_at: bool = True
    dropped_fields: frozenset[str] = frozenset()  # model fields the Admin API never stores
    transient_fields: frozenset[str] = frozenset()  # accepted in bodies, stored elsewhere
    empty_as_null: tuple[tuple[str, ...], ...] = ()  # Kong shows these as null when empty
    unique_keys: Callable[[dict[str, Any]], list[tuple[str, str | None]]] = field(
        default=lambda doc: []
    )
    # key name -> the fields Kong shows in a UNIQUE violation for that key
    unique_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def reference(self, field_name: str) -> Reference | None:
        for ref in self.references:
            if ref.field == field_name:
                return ref
        return None


def _ref_id(doc: dict[str, Any], field_name: str) -> str | None:
    value = doc.get(field_name)
    return value.get("id") if isinstance(value, dict) else None


def _single(name: str) -> Callable[[dict[str, Any]], list[tuple[str, str | None]]]:
    return lambda doc: [(name, doc.get(name))]


def _plugin_keys(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    scope = composite_key(
        doc.get("name"), _ref_id(doc, "route"), _ref_id(doc, "service"), _ref_id(doc, "consumer")
    )
    return [("cache_key", scope), ("instance_name", doc.get("instance_name"))]


def _target_keys(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [("target", composite_key(_ref_id(doc, "upstream"), doc.get("target")))]


def _acl_keys(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [("cache_key", composite_key(_ref_id(doc, "consumer"), doc.get("group")))]


_CONSUMER = Reference("consumer", "consumers", "cascade")


def _credential(
    store_type: str, path: str, nested: str, key: str | None, unique: str | None
) -> EntitySpec:
    keys = _acl_keys if store_type == "acls" else _single(unique or "")
    unique_fields: dict[str, tuple[str, ...]] = (
        {"cache_key": ("consumer", "group")}
        if store_type == "acls"
        else {unique or "": (unique or "",)}
    )
    return EntitySpec(
        store_type,
        path,
        CREDENTIAL_MODELS[store_type],
        endpoint_key=key,
        references=(_CONSUMER,),
        nested_path=nested,
        has_updated_at=False,
        unique_keys=keys,
        unique_fields=unique_fields,
    )


SPECS: tuple[EntitySpec, ...] = (
    EntitySpec(
        "services",
        "services",
        Service,
        endpoint_key="name",
        references=(Reference("client_certificate", "certificates", "restrict"),),
        unique_keys=_single("name"),
        unique_fields={"name": ("name",)},
    ),
    EntitySpec(
        "routes",
        "routes",
        Route,
        endpoint_key="name",
        references=(Reference("service", "services", "restrict"),),
        empty_as_null=tuple(
            (name,)
            for name in ("methods", "hosts", "paths", "headers", "snis", "sources", "destinations")
        ),
        unique_keys=_single("name"),
        unique_fields={"name": ("name",)},
    ),
    EntitySpec(
        "upstreams",
        "upstreams",
        Upstream,
        endpoint_key="name",
        references=(Reference("client_certificate", "certificates", "restrict"),),
        empty_as_null=(("healthchecks", "active", "headers"),),
        unique_keys=_single("name"),
        unique_fields={"name": ("name",)},
    ),
    EntitySpec(
        "targets",
        "targets",
        Target,
        endpoint_key="target",
        references=(Reference("upstream", "upstreams", "cascade"),),
        millis=True,
        unique_keys=_target_keys,
        unique_fields={"target": ("target", "upstream")},
    ),
    EntitySpec(
        "consumers",
        "consumers",
        Consumer,
        endpoint_key="username",
        dropped_fields=frozenset({"credentials"}),
        unique_keys=lambda doc: [
            ("username", doc.get("username")),
            ("custom_id", doc.get("custom_id")),
        ],
        unique_fields={"username": ("username",), "custom_id": ("custom_id",)},
    ),
    EntitySpec(
        "plugins",
        "plugins",
        Plugin,
        endpoint_key="instance_name",
        references=(
            Reference("route", "routes", "cascade"),
            Reference("service", "services", "cascade"),
            Reference("consumer", "consumers", "cascade"),
        ),
        unique_keys=_plugin_keys,
        unique_fields={
            "cache_key": ("name", "route", "service", "consumer"),
            "instance_name": ("instance_name",),
        },
    ),
    EntitySpec(
        "certificates",
        "certificates",
        Certificate,
        transient_fields=frozenset({"snis"}),
    ),
    EntitySpec(
        "snis",
        "snis",
        SNI,
        endpoint_key="name",
        references=(Reference("certificate", "certificates", "cascade"),),
        unique_keys=_single("name"),
        unique_fields={"name": ("name",)},
    ),
    EntitySpec(
        "ca_certificates",
        "ca_certificates",
        CACertificate,
        unique_keys=_single("cert_digest"),
        unique_fields={"cert_digest": ("cert_digest",)},
    ),
    _credential("keyauth_credentials", "key-auths", "key-auth", "key", "key"),
    _credential("basicauth_credentials", "basic-auths", "basic-auth", "username", "username"),
    _credential("hmacauth_credentials", "hmac-auths", "hmac-auth", "username", "username"),
    _credential("jwt_secrets", "jwts", "jwt", "key", "key"),
    _credential("acls", "acls", "acls", "group", None),
)

BY_TYPE: dict[str, EntitySpec] = {spec.store_type: spec for spec in SPECS}
BY_PATH: dict[str, EntitySpec] = {spec.path: spec for spec in SPECS}
CREDENTIAL_SPECS = tuple(spec for spec in SPECS if spec.nested_path is not None)

# parent type -> (URL segment, child spec, the child's field naming the parent)
NESTED: dict[str, tuple[tuple[str, EntitySpec, str], ...]] = {
    "services": (
        ("routes", BY_TYPE["routes"], "service"),
        ("plugins", BY_TYPE["plugins"], "service"),
    ),
    "routes": (("plugins", BY_TYPE["plugins"], "route"),),
    "consumers": (
        ("plugins", BY_TYPE["plugins"], "consumer"),
        *((spec.nested_path or "", spec, "consumer") for spec in CREDENTIAL_SPECS),
    ),
    "upstreams": (("targets", BY_TYPE["targets"], "upstream"),),
    "certificates": (("snis", BY_TYPE["snis"], "certificate"),),
}


def referencing(store_type: str) -> list[tuple[EntitySpec, Reference]]:
    """Every (spec, reference) whose reference points at entities of ``store_type``."""
    return [(spec, ref) for spec in SPECS for ref in spec.references if ref.target == store_type]


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36


def key_lookup(spec: EntitySpec, value: str, parent_id: str | None) -> tuple[str, str] | None:
    """The store unique key an endpoint-key value names, or None when it names nothing.

    Targets are looked up within their upstream and ACL groups within their consumer, so
    those need the scope's ``parent_id``.
    """
    if spec.store_type == "targets":
        if parent_id is None:
            return None
        try:
            return "target", composite_key(parent_id, normalize_target(value))
        except ValueError:
            return None
    if spec.store_type == "acls":
        return ("cache_key", composite_key(parent_id, value)) if parent_id else None
    if spec.endpoint_key is None:
        return None
    return spec.endpoint_key, value
