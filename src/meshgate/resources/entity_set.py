"""The store's gateway entities kept validated and linked, updated by deltas in O(change).

``EntitySet`` holds the flat entity documents of a store (``from_entities``' input) and the
``GatewayConfig`` they make.  ``replace`` takes every document (a full reload): documents
seen before keep their validated model, so only new or edited ones pay for pydantic.
``apply`` takes a delta — ``{(type, id): document, or None when deleted}`` — and, for the
kinds that change often (services, routes, upstreams, targets, plugins), validates only the
changed documents and checks references and uniqueness against indexes, reusing every
other entity's model object.  Whenever the fast path cannot decide (any violation, a
reference by name, a missing timestamp, a consumer or TLS entity in the delta) it falls back
to the full linker, which reports every violation exactly as ``config_from_entities`` does.
Either way the result equals ``config_from_entities`` over the same documents, and a refused
delta leaves the set untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshgate.errors import ConfigError, Violation
from meshgate.resources.declarative_link import link
from meshgate.resources.declarative_walk import Entry, Walk, walk_document
from meshgate.resources.from_entities import (
    ENTITY_TYPES,
    FlatEntity,
    config_from_entities,
    relocate,
)
from meshgate.resources.gateway_config import GatewayConfig
from meshgate.resources.kong_common import check_uuid
from meshgate.resources.kong_consumers import CREDENTIAL_KINDS

Key = tuple[str, str]
"""``(entity type, id)`` as the store names an entity."""

Delta = Mapping[Key, Mapping[str, Any] | None]
"""Changed entities: the new document, or None for a deleted one."""

FAST_KINDS = frozenset({"services", "routes", "upstreams", "targets", "plugins"})
_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "routes": (("service", "services"),),
    "plugins": (("route", "routes"), ("service", "services"), ("consumer", "consumers")),
    "targets": (("upstream", "upstreams"),),
    "services": (("client_certificate", "certificates"),),
    "upstreams": (("client_certificate", "certificates"),),
}
_UNIQUE: dict[str, tuple[str, ...]] = {
    "services": ("name",),
    "routes": ("name",),
    "upstreams": ("name",),
    "plugins": ("instance_name",),
}
_CONFIG_KINDS = tuple(kind for kind in ENTITY_TYPES if kind not in CREDENTIAL_KINDS)


class _Fallback(Exception):
    """The fast path cannot decide this delta: the full linker must."""


class _NotFlat(Exception):
    """A stored document nests other entities (the store's own writers never do that)."""


def _sort_key(model: Any) -> tuple[Any, str]:
    return (model.created_at, model.id)


def _plugin_scope(model: Any) -> tuple[Any, ...] | None:
    if model.instance_name is not None:
        return None
    return (model.name, model.route, model.service, model.consumer)


def _canonical_uuid(value: str) -> str | None:
    try:
        return check_uuid(value)
    except ValueError:
        return None


def _record(kind: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """The document as ``config_from_entities`` hands it to the walk."""
    if kind in CREDENTIAL_KINDS:
        return {key: value for key, value in doc.items() if value is not None}
    return dict(doc)


class EntitySet:
    """Validated, linked gateway entities of one store; see the module docstring."""

    def __init__(self, *, transform: bool = False, now: float | None = None) -> None:
        self._transform = transform
        self._context: dict[str, Any] = {} if now is None else {"now": now}
        self._docs: dict[Key, Mapping[str, Any]] = {}  # in store order
        # document -> its validated (not yet linked) model; credentials: the checked record
        self._validated: dict[Key, tuple[Mapping[str, Any], Any]] = {}
        self._linked: dict[Key, Any] = {}  # linked models of the GatewayConfig kinds
        self._position: dict[str, dict[str, int]] = {}  # kind -> id -> index in config tuple
        self._unique: dict[tuple[str, str], dict[str, str]] = {}  # (kind, field) -> value -> id
        self._scopes: dict[tuple[Any, ...], str] = {}  # unnamed plugin scope -> plugin id
        self._referrers: dict[Key, set[Key]] = {}  # referenced entity -> entities referring
        self.config: GatewayConfig | None = None
        self.fast_applies = 0  # deltas the fast path took (for tests and logs)

    def __len__(self) -> int:
        return len(self._docs)

    # ------------------------------------------------------------------ public

    def replace(
        self, entities: Iterable[FlatEntity | tuple[str, Mapping[str, Any]]]
    ) -> GatewayConfig:
        """Make the set exactly ``entities``; ``ConfigError`` (set untouched) if invalid."""
        docs: dict[Key, Mapping[str, Any]] = {}
        for item in entities:
            kind, doc = item if isinstance(item, tuple) else (item.type, item.doc)
            if kind in ENTITY_TYPES:
                docs[(kind, str(doc.get("id")))] = doc
        return self._full(docs)

    def apply(self, delta: Delta) -> GatewayConfig:
        """Apply changed documents; ``ConfigError`` (set untouched) if the result is invalid."""
        delta = {key: doc for key, doc in delta.items() if key[0] in ENTITY_TYPES}
        if self.config is None:
            raise RuntimeError("EntitySet.apply before replace")
        if not delta:
            return self.config
        docs = dict(self._docs)
        for key, doc in delta.items():
            if doc is None:
                docs.pop(key, None)
            else:
                docs[key] = doc
        try:
            config = self._fast(delta, docs)
        except _Fallback:
            return self._full(docs)
        self.fast_applies += 1
        return config

    # ------------------------------------------------------------------ full

    def _full(self, docs: dict[Key, Mapping[str, Any]]) -> GatewayConfig:
        walk = Walk(transform=self._transform)
        ids: dict[str, list[str]] = {}
        validated: dict[Key, tuple[Mapping[str, Any], Any]] = {}
        pending: dict[str, list[tuple[Entry, Key]]] = {}
        for key, doc in docs.items():
            kind = key[0]
            siblings = walk.entries.setdefault(kind, [])
            kind_ids = ids.setdefault(kind, [])
            entry = Entry(kind, f"{kind}[{len(siblings)}]", _record(kind, doc), len(siblings) + 1)
            siblings.append(entry)
            kind_ids.append(key[1])
            cached = self._validated.get(key)
            if cached is not None and (cached[0] is doc or cached[0] == doc):
                entry.model = cached[1]
                validated[key] = cached
            else:
                pending.setdefault(kind, []).append((entry, key))
        config: GatewayConfig | None
        try:
            for kind, items in pending.items():
                self._validate_entries(walk, kind, items, docs, validated)
        except _NotFlat:  # nested documents: only the declarative walk knows them
            config = config_from_entities(
                [(kind, doc) for (kind, _), doc in docs.items()],
                transform=self._transform, now=self._context.get("now"),
            )  # fmt: skip
            validated = {}
        else:
            config = link(walk)
        if config is None:
            raise ConfigError([relocate(v, ids) for v in walk.violations])
        config = self._keep_identities(config)
        self._docs = docs
        self._validated = validated
        self._index(config)
        self.config = config
        return config

    def _validate_entries(
        self,
        walk: Walk,
        kind: str,
        items: list[tuple[Entry, Key]],
        docs: Mapping[Key, Mapping[str, Any]],
        validated: dict[Key, tuple[Mapping[str, Any], Any]],
    ) -> None:
        """Validate new documents of one kind; their violations get their full-walk path."""
        mini = walk_document(
            {"_format_version": "3.0", kind: [entry.raw for entry, _ in items]}, self._context
        )
        checked = mini.entries.get(kind, [])
        if set(mini.entries) - {kind} or len(checked) != len(items):
            raise _NotFlat
        for (entry, key), result in zip(items, checked, strict=True):
            entry.model = result.model
            entry.raw = result.raw
            if result.model is not None:
                validated[key] = (docs[key], result.model)
        for violation in mini.violations:
            head, _, rest = violation.path.partition("]")
            index = int(head.removeprefix(f"{kind}["))
            walk.violations.append(Violation(f"{items[index][0].path}{rest}", violation.message))

    def _keep_identities(self, config: GatewayConfig) -> GatewayConfig:
        """``config`` with each entity equal to the previous one replaced by that object."""
        if not self._linked:
            return config
        update: dict[str, tuple[Any, ...]] = {}
        for kind in _CONFIG_KINDS:
            models = getattr(config, kind)
            kept = tuple(self._same_or(kind, model) for model in models)
            if any(a is not b for a, b in zip(kept, models, strict=True)):
                update[kind] = kept
        return config.model_copy(update=update) if update else config

    def _same_or(self, kind: str, model: Any) -> Any:
        previous = self._linked.get((kind, model.id))
        return previous if previous is not None and previous == model else model

    def _index(self, config: GatewayConfig) -> None:
        self._linked = {}
        self._position = {}
        self._unique = {}
        self._scopes = {}
        self._referrers = {}
        for kind in _CONFIG_KINDS:
            positions = self._position.setdefault(kind, {})
            for index, model in enumerate(getattr(config, kind)):
                self._linked[(kind, model.id)] = model
                positions[model.id] = index
                self._index_one(kind, model)

    def _index_one(self, kind: str, model: Any) -> None:
        for field in _UNIQUE.get(kind, ()):
            value = getattr(model, field)
            if value is not None:
                self._unique.setdefault((kind, field), {})[value] = model.id
        if kind == "plugins":
            scope = _plugin_scope(model)
            if scope is not None:
                self._scopes[scope] = model.id
        for field, target_kind in _REFERENCES.get(kind, ()):
            value = getattr(model, field)
            if value is not None:
                self._referrers.setdefault((target_kind, value), set()).add((kind, model.id))

    def _unindex_one(self, kind: str, model: Any) -> None:
        for field in _UNIQUE.get(kind, ()):
            value = getattr(model, field)
            holders = self._unique.get((kind, field), {})
            if value is not None and holders.get(value) == model.id:
                del holders[value]
        if kind == "plugins":
            scope = _plugin_scope(model)
            if scope is not None and self._scopes.get(scope) == model.id:
                del self._scopes[scope]
        for field, target_kind in _REFERENCES.get(kind, ()):
            value = getattr(model, field)
            if value is not None:
                self._referrers.get((target_kind, value), set()).discard((kind, model.id))

    # ------------------------------------------------------------------ fast

    def _fast(self, delta: Delta, docs: dict[Key, Mapping[str, Any]]) -> GatewayConfig:
        assert self.config is not None
        if any(kind not in FAST_KINDS for kind, _ in delta):
            raise _Fallback
        for key in delta:
            if key in self._docs and key not in self._linked:
                raise _Fallback  # stored under an id that is not in canonical form
        upserts = {key: doc for key, doc in delta.items() if doc is not None}
        models = self._validate_fast(upserts)
        linked = {key: self._link_one(key, model, delta) for key, model in models.items()}
        self._check_deletes(delta)
        self._check_unique(delta, linked)
        return self._commit(delta, docs, models, linked)

    def _validate_fast(self, upserts: Mapping[Key, Mapping[str, Any]]) -> dict[Key, Any]:
        models: dict[Key, Any] = {}
        by_kind: dict[str, list[Key]] = {}
        for key, doc in upserts.items():
            cached = self._validated.get(key)
            if cached is not None and (cached[0] is doc or cached[0] == doc):
                models[key] = cached[1]
            else:
                by_kind.setdefault(key[0], []).append(key)
        for kind, keys in by_kind.items():
            mini = walk_document(
                {"_format_version": "3.0", kind: [_record(kind, upserts[k]) for k in keys]},
                self._context,
            )
            checked = mini.entries.get(kind, [])
            if mini.violations or set(mini.entries) - {kind} or len(checked) != len(keys):
                raise _Fallback
            for key, entry in zip(keys, checked, strict=True):
                models[key] = entry.model
        return models

    def _present(self, key: Key, delta: Delta) -> bool:
        if key in delta:
            return delta[key] is not None
        return key in self._linked

    def _link_one(self, key: Key, model: Any, delta: Delta) -> Any:
        """What the linker makes of one stored entity, or ``_Fallback``."""
        kind = key[0]
        if model.id != key[1] or model.created_at is None:
            raise _Fallback
        update: dict[str, Any] = {}
        if model.updated_at is None:
            update["updated_at"] = model.created_at
        for field, target_kind in _REFERENCES.get(kind, ()):
            value = getattr(model, field)
            if value is None:
                if kind == "targets":
                    raise _Fallback  # an orphan target: the linker reports it
                continue
            target = _canonical_uuid(value)
            if target is None or not self._present((target_kind, target), delta):
                raise _Fallback
            if target != value:
                update[field] = target
        if kind == "services" and model.ca_certificates:
            raise _Fallback
        return model.model_copy(update=update) if update else model

    def _check_deletes(self, delta: Delta) -> None:
        for key, doc in delta.items():
            if doc is None and self._referrers.get(key, set()) - delta.keys():
                raise _Fallback  # still referenced: the linker reports who refers to it

    def _check_unique(self, delta: Delta, linked: Mapping[Key, Any]) -> None:
        changed = {key[1] for key in delta}
        taken: dict[tuple[Any, ...], str] = {}
        for (kind, entity_id), model in linked.items():
            for field in _UNIQUE.get(kind, ()):
                value = getattr(model, field)
                if value is None:
                    continue
                holder = self._unique.get((kind, field), {}).get(value)
                claim = taken.setdefault((kind, field, value), entity_id)
                if (holder is not None and holder not in changed) or claim != entity_id:
                    raise _Fallback
            if kind == "plugins":
                scope = _plugin_scope(model)
                if scope is None:
                    continue
                holder = self._scopes.get(scope)
                claim = taken.setdefault(("scope", *scope), entity_id)
                if (holder is not None and holder not in changed) or claim != entity_id:
                    raise _Fallback

    def _commit(
        self,
        delta: Delta,
        docs: dict[Key, Mapping[str, Any]],
        models: Mapping[Key, Any],
        linked: Mapping[Key, Any],
    ) -> GatewayConfig:
        assert self.config is not None
        kinds = {kind for kind, _ in delta}
        update: dict[str, tuple[Any, ...]] = {}
        for kind in kinds:
            sequence = list(getattr(self.config, kind))
            positions = self._position[kind]
            reorder = False
            for key in delta:
                if key[0] != kind:
                    continue
                old = self._linked.get(key)
                new = linked.get(key)
                if old is not None:
                    self._unindex_one(kind, old)
                if old is None or new is None or _sort_key(old) != _sort_key(new):
                    reorder = True
                elif new is not None:
                    sequence[positions[key[1]]] = new
            for key, new in linked.items():
                if key[0] == kind:
                    self._index_one(kind, new)
            if reorder:
                by_id = {model.id: model for model in sequence}
                for key, doc in delta.items():
                    if key[0] != kind:
                        continue
                    if doc is None:
                        by_id.pop(key[1], None)
                    else:
                        by_id[key[1]] = linked[key]
                sequence = sorted(by_id.values(), key=_sort_key)
                self._position[kind] = {model.id: i for i, model in enumerate(sequence)}
            update[kind] = tuple(sequence)
        for key, doc in delta.items():
            if doc is None:
                self._linked.pop(key, None)
                self._validated.pop(key, None)
                self._referrers.pop(key, None)
            else:
                self._linked[key] = linked[key]
                self._validated[key] = (doc, models[key])
        self._docs = docs
        self.config = self.config.model_copy(update=update)
        return self.config
