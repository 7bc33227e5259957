"""Backend-neutral pieces of the store: write preparation, list queries and offsets, the
per-transaction change log, the ``replace_all`` diff plan and an owner-aware lock."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshgate.store.api import (
    MAX_PAGE_SIZE,
    ChangeOp,
    Doc,
    EntityWrite,
    Filter,
    TagsMode,
    UniqueKeys,
)
from meshgate.store.errors import InvalidOffset, InvalidQuery, UniqueViolation

CHANGE_RETENTION_REVISIONS = 10_000
"""The change log keeps the changes of this many latest revisions; older ones are pruned."""

_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]+$")


@dataclass(frozen=True, slots=True)
class PreparedEntity:
    """A doc ready to be stored, with the columns the store indexes."""

    type: str
    id: str
    doc: Doc
    created_at: float
    updated_at: float
    tags: list[str]
    keys: list[tuple[str, str]]

    def doc_json(self) -> str:
        return json.dumps(self.doc, separators=(",", ":"), ensure_ascii=False)


def prepare(
    entity_type: str, doc: Mapping[str, Any], unique_keys: UniqueKeys, entity_id: str | None = None
) -> PreparedEntity:
    """Copy ``doc``, settle its id (given, in the doc, or a new UUID) and pull out indexed fields."""
    if not entity_type:
        raise InvalidQuery("entity type must not be empty")
    stored = dict(doc)
    if entity_id is None:
        entity_id = stored.get("id") or str(uuid.uuid4())
    if not isinstance(entity_id, str) or not entity_id:
        raise InvalidQuery(f"{entity_type}: id must be a non-empty string")
    stored["id"] = entity_id
    now = time.time()
    created_at = _timestamp(stored.get("created_at"), now, "created_at")
    updated_at = _timestamp(stored.get("updated_at"), created_at, "updated_at")
    tags = stored.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise InvalidQuery(f"{entity_type}: tags must be a list of strings")
    keys: list[tuple[str, str]] = []
    for key_name, value in unique_keys:
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidQuery(f"{entity_type}: unique key {key_name} must be a string")
        if key_name == "id":
            raise InvalidQuery('"id" is always unique; do not declare it as a key')
        keys.append((key_name, value))
    keys = list(dict.fromkeys(keys))
    return PreparedEntity(entity_type, entity_id, stored, created_at, updated_at, tags, keys)


def _timestamp(value: Any, default: float, name: str) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidQuery(f"{name} must be a number of epoch seconds")
    return float(value)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A validated ``list`` call: filters, page size and the position to start after."""

    entity_type: str
    size: int
    after_seq: int
    tags: tuple[str, ...]
    tags_mode: TagsMode
    filter: tuple[tuple[tuple[str, ...], str | None], ...]

    def fingerprint(self) -> str:
        """Identifies the query an offset belongs to (changing tags invalidates it, as in Kong)."""
        material = json.dumps([self.entity_type, self.tags, self.tags_mode, self.filter])
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    def offset_after(self, seq: int) -> str:
        raw = json.dumps([seq, self.fingerprint()], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def list_query(
    entity_type: str,
    size: int,
    offset: str | None,
    tags: Sequence[str] | None,
    tags_mode: str,
    filter: Filter | None,
) -> ListQuery:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"size must be an integer from 1 to {MAX_PAGE_SIZE}")
    if tags_mode not in ("and", "or"):
        raise InvalidQuery('tags_mode must be "and" or "or"')
    tag_tuple = tuple(sorted(set(tags or ())))
    if not all(isinstance(tag, str) for tag in tag_tuple):
        raise InvalidQuery("tags must be strings")
    mode: TagsMode = "and" if tags_mode == "and" else "or"
    conditions = tuple(sorted((filter_path(path), value) for path, value in (filter or {}).items()))
    for _path, value in conditions:
        if value is not None and not isinstance(value, str):
            raise InvalidQuery("filter values must be strings or None")
    query = ListQuery(entity_type, size, 0, tag_tuple, mode, conditions)
    if offset is None:
        return query
    after_seq = _decode_offset(offset, query.fingerprint())
    return ListQuery(entity_type, size, after_seq, tag_tuple, mode, conditions)


def _decode_offset(offset: str, fingerprint: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(offset + "=" * (-len(offset) % 4))
        seq, owner = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidOffset(f"invalid offset {offset!r}") from exc
    if not isinstance(seq, int) or isinstance(seq, bool) or owner != fingerprint:
        raise InvalidOffset(f"offset {offset!r} does not belong to this query")
    return seq


def filter_path(path: str) -> tuple[str, ...]:
    """``"service.id"`` → ``("service", "id")``; only plain field names are allowed."""
    segments = tuple(path.split("."))
    if not all(_PATH_SEGMENT.match(segment) for segment in segments):
        raise InvalidQuery(f"invalid filter field {path!r}")
    return segments


def matches_filter(doc: Doc, conditions: Iterable[tuple[tuple[str, ...], str | None]]) -> bool:
    """The filter semantics the SQL of both backends implements, in Python (used by tests)."""
    for path, expected in conditions:
        value: Any = doc
        for segment in path:
            value = value.get(segment) if isinstance(value, dict) else None
        if expected is None:
            if value is not None:
                return False
        elif value is None or scalar_text(value) != expected:
            return False
    return True


def scalar_text(value: Any) -> str:
    """How a JSON scalar compares with a filter string: strings as-is, others as JSON text."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


@dataclass(slots=True)
class ChangeLog:
    """The net change per entity within one transaction."""

    ops: dict[tuple[str, str], ChangeOp] = field(default_factory=dict)

    def record(self, entity_type: str, entity_id: str, op: ChangeOp) -> None:
        key = (entity_type, entity_id)
        previous = self.ops.get(key)
        if previous == "insert" and op == "delete":
            del self.ops[key]  # created and removed in the same transaction: no net change
            return
        if previous == "insert":
            op = "insert"
        elif previous == "delete" and op == "insert":
            op = "update"
        self.ops[key] = op

    def rows(self, revision: int) -> list[tuple[int, str, str, str]]:
        return [(revision, etype, eid, op) for (etype, eid), op in self.ops.items()]


@dataclass(slots=True)
class ReplacePlan:
    """What ``replace_all`` must write to turn the stored entities into the wanted ones."""

    deletes: list[tuple[str, str]] = field(default_factory=list)
    writes: list[PreparedEntity] = field(default_factory=list)
    keys: list[tuple[str, str, str, str]] = field(default_factory=list)
    changes: ChangeLog = field(default_factory=ChangeLog)


def plan_replace(
    existing: Mapping[tuple[str, str], Doc], wanted: Iterable[EntityWrite]
) -> ReplacePlan:
    """Diff stored docs against wanted entities; duplicate ids or keys raise ``UniqueViolation``.

    Every unique key is rewritten (the caller clears the key table first), so entities may
    swap names; only docs that differ are rewritten and logged.
    """
    plan = ReplacePlan()
    seen_ids: set[tuple[str, str]] = set()
    key_owner: dict[tuple[str, str, str], str] = {}
    for write in wanted:
        entity = prepare(write.type, write.doc, write.unique_keys)
        ident = (entity.type, entity.id)
        if ident in seen_ids:
            raise UniqueViolation(entity.type, "id", entity.id, entity.id)
        seen_ids.add(ident)
        for key_name, value in entity.keys:
            owner = key_owner.setdefault((entity.type, key_name, value), entity.id)
            if owner != entity.id:
                raise UniqueViolation(entity.type, key_name, value, owner)
            plan.keys.append((entity.type, key_name, value, entity.id))
        old_doc = existing.get(ident)
        if old_doc is None:
            plan.writes.append(entity)
            plan.changes.record(entity.type, entity.id, "insert")
        elif old_doc != entity.doc:
            plan.writes.append(entity)
            plan.changes.record(entity.type, entity.id, "update")
    for ident in existing:
        if ident not in seen_ids:
            plan.deletes.append(ident)
            plan.changes.record(ident[0], ident[1], "delete")
    return plan


class OwnedLock:
    """An ``asyncio.Lock`` that fails loudly when its holder task tries to take it again
    (e.g. calling ``store.get`` inside ``store.transaction()``) instead of deadlocking."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    def check_not_held(self) -> None:
        """Raise if the current task holds this lock (i.e. is inside a store transaction)."""
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            raise RuntimeError("store used inside its own transaction: use the transaction object")

    async def __aenter__(self) -> None:
        self.check_not_held()
        await self._lock.acquire()
        self._owner = asyncio.current_task()

    async def __aexit__(self, *exc_info: object) -> None:
        self._owner = None
        self._lock.release()
