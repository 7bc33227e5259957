"""Second pass over a declarative document: ids, timestamps, references, uniqueness.

Entities without an ``id`` get a stable one, ``stable_id(kind, key)``, where ``key`` is the
entity's natural key: its endpoint key (service/route/upstream name, consumer username, SNI
name, CA certificate digest), the ``(name, route, service, consumer)`` scope of a plugin, the
``(upstream, target)`` of a target, or — for entities with no natural key, like an unnamed
route — its position in the file.  Entities without ``created_at`` get their 1-based order of
appearance among entities of the same kind (``updated_at`` defaults to ``created_at``), so the
router's "older route first" tie-break follows the file order.  References given by name or
id are resolved to ids; unknown references and duplicates become violations.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from meshgate.errors import Violation
from meshgate.resources.declarative_walk import Entry, Walk
from meshgate.resources.gateway_config import GatewayConfig
from meshgate.resources.kong_common import check_uuid, foreign_key, stable_id
from meshgate.resources.kong_consumers import CREDENTIAL_KINDS, CREDENTIAL_UNIQUE_FIELD
from meshgate.resources.kong_tls import certificate_digest

# kind -> fields addressable by name in references (besides ``id``)
_ENDPOINT_KEYS = {
    "services": ("name",),
    "routes": ("name",),
    "upstreams": ("name",),
    "consumers": ("username",),
    "certificates": (),
    "ca_certificates": (),
}
# kind -> fields that must be unique among entities of that kind
_UNIQUE_FIELDS = {
    "services": ("name",),
    "routes": ("name",),
    "upstreams": ("name",),
    "consumers": ("username", "custom_id"),
    "snis": ("name",),
    "plugins": ("instance_name",),
    "ca_certificates": ("cert_digest",),
}
# kind -> (reference field, referenced kind)
_REFERENCE_FIELDS = {
    "routes": (("service", "services"),),
    "plugins": (("route", "routes"), ("service", "services"), ("consumer", "consumers")),
    "targets": (("upstream", "upstreams"),),
    "snis": (("certificate", "certificates"),),
    "services": (("client_certificate", "certificates"),),
    "upstreams": (("client_certificate", "certificates"),),
}


def _as_uuid(value: str) -> str | None:
    try:
        return check_uuid(value)
    except ValueError:
        return None


class Linker:
    """Holds the walk's entries and turns them into a ``GatewayConfig``."""

    def __init__(self, walk: Walk) -> None:
        self.walk = walk
        self.entries = walk.entries
        self.by_id: dict[str, dict[str, Entry]] = defaultdict(dict)
        self.by_key: dict[str, dict[str, Entry]] = defaultdict(dict)
        # entries whose id was derived here; two derived ids only collide when natural keys
        # do, and that is reported by the uniqueness checks already
        self.generated_ids: set[int] = set()

    def violation(self, path: str, message: str) -> None:
        self.walk.violations.append(Violation(path, message))

    def valid(self, kind: str) -> list[Entry]:
        return [e for e in self.entries.get(kind, []) if e.model is not None]

    def update(self, entry: Entry, **changes: Any) -> None:
        entry.model = entry.model.model_copy(update=changes)

    # ------------------------------------------------------------------ steps

    def link(self) -> GatewayConfig | None:
        for kind in (*_ENDPOINT_KEYS, "targets", "plugins", "snis"):
            self._timestamps(kind)
        for kind in ("services", "routes", "upstreams", "consumers", "ca_certificates"):
            self._own_ids(kind)
        self._certificate_ids()
        for kind in _ENDPOINT_KEYS:
            self._index(kind)
        self._resolve_all()
        self._dependent_ids()
        for kind, fields in _UNIQUE_FIELDS.items():
            self._unique(kind, fields)
        self._unique_plugin_scopes()
        self._unique_ids()
        consumers = self._consumers_with_credentials()
        if self.walk.violations:
            return None
        return GatewayConfig(
            transform=self.walk.transform,
            services=self._sorted("services"),
            routes=self._sorted("routes"),
            upstreams=self._sorted("upstreams"),
            targets=self._sorted("targets"),
            consumers=tuple(sorted(consumers, key=lambda c: (c.created_at, c.id))),
            plugins=self._sorted("plugins"),
            certificates=self._sorted("certificates"),
            snis=self._sorted("snis"),
            ca_certificates=self._sorted("ca_certificates"),
        )

    def _sorted(self, kind: str) -> tuple[Any, ...]:
        models = [e.model for e in self.valid(kind)]
        return tuple(sorted(models, key=lambda m: (m.created_at, m.id)))

    def _timestamps(self, kind: str) -> None:
        for entry in self.valid(kind):
            created = entry.model.created_at
            if created is None:
                created = float(entry.position) if kind == "targets" else entry.position
            updated = entry.model.updated_at
            self.update(
                entry, created_at=created, updated_at=created if updated is None else updated
            )

    def _set_id(self, entry: Entry, key: str) -> None:
        if entry.model.id is None:
            self.update(entry, id=stable_id(entry.kind, key))
            self.generated_ids.add(id(entry))

    def _own_ids(self, kind: str) -> None:
        for entry in self.valid(kind):
            model = entry.model
            if kind == "consumers":
                natural = (
                    f"username:{model.username}"
                    if model.username is not None
                    else f"custom_id:{model.custom_id}"
                )
            elif kind == "ca_certificates":
                natural = model.cert_digest
            else:
                natural = model.name
            self._set_id(entry, natural if natural is not None else f"@{entry.path}")

    def _certificate_ids(self) -> None:
        used: set[str] = set()
        for entry in self.valid("certificates"):
            key = certificate_digest(entry.model.cert)
            if key in used:
                key = f"{key}@{entry.path}"
            used.add(key)
            self._set_id(entry, key)

    def _index(self, kind: str) -> None:
        for entry in self.entries.get(kind, []):
            source: Any = entry.model if entry.model is not None else None
            raw_id = source.id if source is not None else entry.raw.get("id")
            if isinstance(raw_id, str):
                self.by_id[kind].setdefault(_as_uuid(raw_id) or raw_id, entry)
            for field in _ENDPOINT_KEYS[kind]:
                value = getattr(source, field) if source is not None else entry.raw.get(field)
                if isinstance(value, str):
                    self.by_key[kind].setdefault(value, entry)

    def resolve(self, kind: str, value: Any, path: str) -> str | None:
        """The id ``value`` (an id or an endpoint key) designates; None (+violation) if none."""
        value = foreign_key(value)
        if not isinstance(value, str):
            self.violation(path, "expected a reference (a name or an id)")
            return None
        as_id = _as_uuid(value)
        target = self.by_id[kind].get(as_id) if as_id is not None else None
        if target is None:
            target = self.by_key[kind].get(value)
        if target is None:
            self.violation(path, f"invalid reference '{value}': no such entry in '{kind}'")
            return None
        if target.model is None:
            return None  # the referenced entity is invalid and already reported
        resolved: str = target.model.id
        return resolved

    def _resolve_field(self, entry: Entry, field: str, kind: str) -> None:
        if entry.parent_field == field:
            parent = entry.parent
            if parent is not None and parent.model is not None:
                self.update(entry, **{field: parent.model.id})
            else:
                entry.model = None  # the parent is invalid, already reported
            return
        value = getattr(entry.model, field)
        if value is not None:
            self.update(entry, **{field: self.resolve(kind, value, f"{entry.path}.{field}")})

    def _check_invalid_references(self) -> None:
        """References of entities that failed validation are still checked (raw values)."""
        for kind, fields in _REFERENCE_FIELDS.items():
            for entry in self.entries.get(kind, []):
                if entry.model is not None:
                    continue
                for field, target_kind in fields:
                    value = foreign_key(entry.raw.get(field))
                    if isinstance(value, str) and field != entry.parent_field:
                        self.resolve(target_kind, value, f"{entry.path}.{field}")

    def _resolve_all(self) -> None:
        self._check_invalid_references()
        for entry in self.valid("routes"):
            self._resolve_field(entry, "service", "services")
        for entry in self.valid("plugins"):
            for field, kind in (
                ("route", "routes"),
                ("service", "services"),
                ("consumer", "consumers"),
            ):
                if entry.model is not None:
                    self._resolve_field(entry, field, kind)
        for kind, field, target_kind in (
            ("targets", "upstream", "upstreams"),
            ("snis", "certificate", "certificates"),
        ):
            for entry in self.valid(kind):
                self._resolve_field(entry, field, target_kind)
                orphan = entry.model is not None and getattr(entry.model, field) is None
                if orphan and entry.parent_field is None and field not in entry.raw:
                    self.violation(f"{entry.path}.{field}", "required field missing")
        for kind in ("services", "upstreams"):
            for entry in self.valid(kind):
                self._resolve_field(entry, "client_certificate", "certificates")
        for entry in self.valid("services"):
            cas = entry.model.ca_certificates
            if cas:
                ids = [
                    self.resolve("ca_certificates", ca, f"{entry.path}.ca_certificates[{i}]")
                    for i, ca in enumerate(cas)
                ]
                self.update(entry, ca_certificates=tuple(i for i in ids if i is not None))
        for kind in CREDENTIAL_KINDS:
            for entry in self.valid(kind):
                consumer = self.resolve(
                    "consumers", entry.raw["consumer"], f"{entry.path}.consumer"
                )
                entry.raw = {**entry.raw, "consumer": consumer}

    def _dependent_ids(self) -> None:
        seen_targets: dict[str, int] = defaultdict(int)
        for entry in self.valid("targets"):
            key = f"{entry.model.upstream}|{entry.model.target}"
            occurrence = seen_targets[key]
            seen_targets[key] += 1
            self._set_id(entry, key if occurrence == 0 else f"{key}#{occurrence}")
        for entry in self.valid("plugins"):
            model = entry.model
            scope = f"{model.name}|{model.route or ''}|{model.service or ''}|{model.consumer or ''}"
            self._set_id(entry, f"instance:{model.instance_name}" if model.instance_name else scope)
        for entry in self.valid("snis"):
            self._set_id(entry, entry.model.name)

    # ------------------------------------------------------------------ uniqueness

    def _unique(self, kind: str, fields: tuple[str, ...]) -> None:
        # Invalid entities take part through their raw values: a duplicate name is worth
        # reporting even when the first holder of the name has problems of its own.
        for field in fields:
            first: dict[str, Entry] = {}
            for entry in self.entries.get(kind, []):
                model = entry.model
                value = getattr(model, field) if model is not None else entry.raw.get(field)
                if not isinstance(value, str):
                    continue
                if value in first:
                    self.violation(
                        f"{entry.path}.{field}",
                        f"uniqueness violation: {field} '{value}' is already used by "
                        f"{first[value].path}",
                    )
                else:
                    first[value] = entry

    def _unique_plugin_scopes(self) -> None:
        first: dict[tuple[Any, ...], Entry] = {}
        for entry in self.valid("plugins"):
            m = entry.model
            if m.instance_name is not None:
                continue  # named instances are told apart by instance_name
            scope = (m.name, m.route, m.service, m.consumer)
            if scope in first:
                self.violation(
                    f"{entry.path}.name",
                    f"uniqueness violation: plugin '{m.name}' is already configured for this "
                    f"route/service/consumer scope by {first[scope].path}",
                )
            else:
                first[scope] = entry

    def _unique_ids(self) -> None:
        for kind in ("services", "routes", "upstreams", "targets", "consumers", "plugins",
                     "certificates", "snis", "ca_certificates"):  # fmt: skip
            first: dict[str, Entry] = {}
            for entry in self.valid(kind):
                entity_id = entry.model.id
                both_derived = id(entry) in self.generated_ids and (
                    entity_id in first and id(first[entity_id]) in self.generated_ids
                )
                if entity_id in first and not both_derived:
                    self.violation(
                        f"{entry.path}.id",
                        f"uniqueness violation: id '{entity_id}' is already used by "
                        f"{first[entity_id].path}",
                    )
                else:
                    first[entity_id] = entry

    # ------------------------------------------------------------------ credentials

    def _consumers_with_credentials(self) -> list[Any]:
        """Consumers with every credential (nested or top-level) attached and given an id."""
        gathered: dict[str, dict[str, list[tuple[str, dict[str, Any]]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for entry in self.valid("consumers"):
            for kind, records in entry.model.credentials.items():
                for index, record in enumerate(records):
                    gathered[entry.model.id][kind].append((f"{entry.path}.{kind}[{index}]", record))
        for kind in CREDENTIAL_KINDS:
            for entry in self.valid(kind):
                consumer_id = entry.raw.get("consumer")
                if isinstance(consumer_id, str):
                    gathered[consumer_id][kind].append((entry.path, entry.model))
        unique_seen: dict[tuple[str, str], str] = {}
        consumers = []
        for entry in self.valid("consumers"):
            credentials: dict[str, tuple[dict[str, Any], ...]] = {}
            for kind, located in sorted(gathered[entry.model.id].items()):
                records = [
                    self._credential(entry.model.id, kind, path, record, unique_seen)
                    for path, record in located
                ]
                credentials[kind] = tuple(sorted(records, key=lambda r: str(r["id"])))
            consumers.append(entry.model.model_copy(update={"credentials": credentials}))
        return consumers

    def _credential(
        self,
        consumer_id: str,
        kind: str,
        path: str,
        record: dict[str, Any],
        unique_seen: dict[tuple[str, str], str],
    ) -> dict[str, Any]:
        field = CREDENTIAL_UNIQUE_FIELD.get(kind)
        natural = (
            f"{consumer_id}|{record['group']}" if kind == "acls" else str(record.get(field or ""))
        )
        if (kind, natural) in unique_seen:
            label = "group" if kind == "acls" else field
            self.violation(
                f"{path}.{label}",
                f"uniqueness violation: {label} '{record.get(label or '')}' is already used by "
                f"{unique_seen[(kind, natural)]}",
            )
        else:
            unique_seen[(kind, natural)] = path
        record = {k: v for k, v in record.items() if k != "consumer"}
        given = record.get("id")
        if given is None:
            record["id"] = stable_id(kind, f"{consumer_id}|{natural}")
        elif not isinstance(given, str) or _as_uuid(given) is None:
            self.violation(f"{path}.id", "expected a valid UUID")
        else:
            record["id"] = _as_uuid(given)
        return record


def link(walk: Walk) -> GatewayConfig | None:
    """The config the walk's entries describe, or None when violations were found."""
    return Linker(walk).link()
