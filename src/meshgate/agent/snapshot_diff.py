"""Snapshot deltas for worker processes: what changed between two snapshots, by key.

A supervisor sends its workers ``diff(old, new)`` instead of the whole ``new`` snapshot:
per section (``routes``, ``clusters`` …) the items changed (as JSON) with their positions
when no key moved (``at``: the cost is what changed, even with 10,000 routes), else the items
added or changed, the keys removed and the new key order.  Items are keyed by
``name`` (listeners, clusters) or ``id`` (everything else).  ``patch(old, delta)`` rebuilds
``new`` from ``old``, validating only the items that came in; unchanged items stay the very
same objects, so the runtime reuses what it built from them.  A delta names the version it
applies to (``base``); a worker on another version refuses it and gets a full snapshot.
Pure data: no I/O.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from meshgate import snapshot
from meshgate.proxy.route_stage import changed_positions

SECTIONS: dict[str, type[BaseModel]] = {
    "listeners": snapshot.Listener,
    "routes": snapshot.Route,
    "services": snapshot.Service,
    "clusters": snapshot.Cluster,
    "plugins": snapshot.PluginInstance,
    "consumers": snapshot.Consumer,
    "certificates": snapshot.Certificate,
    "ca_certificates": snapshot.CACertificate,
}
_KEYED_BY_NAME = frozenset({"listeners", "clusters"})


class DeltaMismatch(ValueError):
    """The delta does not apply to this snapshot (another base version, or inconsistent)."""


def key_of(section: str, item: Any) -> str:
    return str(item.name if section in _KEYED_BY_NAME else item.id)


def diff(old: snapshot.Snapshot, new: snapshot.Snapshot) -> dict[str, Any]:
    """The delta that turns ``old`` into ``new`` (a JSON-ready mapping)."""
    sections: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        changes = _section_diff(name, getattr(old, name), getattr(new, name))
        if changes is not None:
            sections[name] = changes
    return {"base": old.version, "version": new.version, "sections": sections}


def _section_diff(
    name: str, old_items: tuple[Any, ...], new_items: tuple[Any, ...]
) -> dict[str, Any] | None:
    if old_items is new_items:
        return None
    moved = changed_positions(new_items, old_items)
    if moved is not None and all(
        key_of(name, new_items[i]) == key_of(name, old_items[i]) for i in moved
    ):  # the same keys in the same places: send the changed items with their positions
        at = [i for i in moved if new_items[i] != old_items[i]]
        if not at:
            return None
        upsert = [new_items[i].model_dump(mode="json") for i in at]
        return {"upsert": upsert, "at": at, "count": len(new_items)}
    old_keys = [key_of(name, item) for item in old_items]
    new_keys = [key_of(name, item) for item in new_items]
    old_by_key = dict(zip(old_keys, old_items, strict=True))
    upsert = []
    for key, item in zip(new_keys, new_items, strict=True):
        previous = old_by_key.get(key)
        if previous is None or not (previous is item or previous == item):
            upsert.append(item.model_dump(mode="json"))
    removed = sorted(old_by_key.keys() - set(new_keys))
    return {"upsert": upsert, "remove": removed, "order": new_keys, "count": len(new_items)}


def patch(old: snapshot.Snapshot, delta: dict[str, Any]) -> snapshot.Snapshot:
    """``old`` with ``delta`` applied; ``DeltaMismatch`` if it was made for another base."""
    if delta.get("base") != old.version:
        raise DeltaMismatch(f"delta for version {delta.get('base')!r}, running {old.version!r}")
    update: dict[str, Any] = {"version": delta["version"]}
    for name, changes in delta.get("sections", {}).items():
        model = SECTIONS.get(name)
        if model is None:
            raise DeltaMismatch(f"unknown snapshot section {name!r}")
        update[name] = _patch_section(name, model, getattr(old, name), changes)
    return old.model_copy(update=update)


def _patch_section(
    name: str, model: type[BaseModel], old_items: tuple[Any, ...], changes: dict[str, Any]
) -> tuple[Any, ...]:
    incoming = [model.model_validate(raw) for raw in changes.get("upsert", ())]
    order = changes.get("order")
    at = changes.get("at")
    if at is not None:
        items = list(old_items)
        if len(at) != len(incoming):
            raise DeltaMismatch(f"{name}: {len(at)} positions for {len(incoming)} items")
        for index, item in zip(at, incoming, strict=True):
            if not (isinstance(index, int) and 0 <= index < len(items)):
                raise DeltaMismatch(f"{name}: position {index!r} is not in the base snapshot")
            if key_of(name, items[index]) != key_of(name, item):
                raise DeltaMismatch(f"{name}: {key_of(name, item)} is not at position {index}")
            items[index] = item
    elif order is None:
        raise DeltaMismatch(f"{name}: the delta gives neither positions nor an order")
    else:
        by_key = {key_of(name, item): item for item in old_items}
        for key in changes.get("remove", ()):
            by_key.pop(key, None)
        for item in incoming:
            by_key[key_of(name, item)] = item
        try:
            items = [by_key[key] for key in order]
        except KeyError as exc:
            raise DeltaMismatch(f"{name}: {exc.args[0]} is neither kept nor sent") from None
    if len(items) != changes.get("count", len(items)):
        raise DeltaMismatch(f"{name}: {len(items)} items, the delta says {changes.get('count')}")
    return tuple(items)
