"""Entity operations behind every Admin API endpoint: list, get, create, upsert, patch, delete.

Each write is one store transaction: the document is built and validated, references are
checked, unique keys are declared, and deletes cascade (or are refused) as Kong's schemas say.
A ``Scope`` narrows an operation to the children of one parent (``/services/{s}/routes``).
After a committed write ``notify()`` runs (the app reports the new revision to ``on_change``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from meshgate.controlplane.admin_api.credential_ttl import (
    drop_expired_holders,
    has_ttl,
    shown,
    stored_ttl,
    take_ttl_option,
    visible,
)
from meshgate.controlplane.admin_api.documents import (
    SERVER_FIELDS,
    build_document,
    find,
    merge,
    unique_error_fields,
)
from meshgate.controlplane.admin_api.errors import (
    INVALID_OFFSET,
    AdminError,
    dao_error,
    not_found,
    primary_key_violation,
    referenced_by,
    schema_violation,
    unique_violation,
)
from meshgate.controlplane.admin_api.registry import (
    BY_TYPE,
    EntitySpec,
    is_uuid,
    referencing,
)
from meshgate.store import (
    Doc,
    InvalidOffset,
    InvalidQuery,
    Page,
    Store,
    Transaction,
    UniqueViolation,
)
from meshgate.store.api import StoreReader, TagsMode


@dataclass(frozen=True, slots=True)
class Scope:
    """Children of one parent: ``field`` of the child holds ``{"id": parent_id}``."""

    field: str
    parent_id: str

    @property
    def pair(self) -> tuple[str, str]:
        return self.field, self.parent_id


@dataclass(frozen=True, slots=True)
class ListQuery:
    size: int
    offset: str | None
    tags: tuple[str, ...]
    tags_mode: TagsMode
    filters: Mapping[str, str | None]


class EntityOps:
    """Kong's DAO semantics over a ``Store``."""

    def __init__(self, store: Store, notify: Callable[[], Awaitable[None]]) -> None:
        self.store = store
        self.notify = notify

    # ------------------------------------------------------------------ reads

    async def list(self, spec: EntitySpec, query: ListQuery, scope: Scope | None) -> Page:
        filters = dict(query.filters)
        tags: tuple[str, ...] = query.tags
        if scope is not None:
            filters[f"{scope.field}.id"] = scope.parent_id
            tags = ()  # Kong ignores the tags filter on foreign-key-scoped lists
        data: list[Doc] = []
        offset = query.offset
        while True:  # expired credentials are left out: read on until the page is full
            try:
                page = await self.store.list(
                    spec.store_type,
                    size=query.size - len(data),
                    offset=offset,
                    tags=tags or None,
                    tags_mode=query.tags_mode,
                    filter=filters,
                )
            except InvalidOffset:
                raise dao_error(
                    400, INVALID_OFFSET, f"'{query.offset}' is not a valid offset for this query"
                ) from None
            except InvalidQuery as exc:
                raise AdminError(400, {"message": str(exc)}) from None
            data += [doc for doc in page.data if visible(spec, doc)]
            offset = page.next_offset
            if offset is None or len(data) >= query.size:
                break
        return Page([await self.present(spec, doc) for doc in data], offset)

    async def get(self, spec: EntitySpec, key: str, scope: Scope | None) -> Doc:
        doc = await find(self.store, spec, key, scope.pair if scope else None)
        if doc is None:
            raise not_found()
        return await self.present(spec, doc)

    async def scope_of(self, parent: EntitySpec, key: str, field: str) -> Scope:
        """The scope of ``/{parent}/{key}/...``; 404 when the parent does not exist."""
        doc = await find(self.store, parent, key)
        if doc is None:
            raise not_found()
        return Scope(field, str(doc["id"]))

    async def referenced(self, spec: EntitySpec, key: str, field: str) -> tuple[EntitySpec, Doc]:
        """``/routes/{r}/service``: the entity ``field`` of ``key`` refers to."""
        ref = spec.reference(field)
        doc = await find(self.store, spec, key)
        if ref is None or doc is None or not isinstance(doc.get(field), dict):
            raise not_found()
        target = BY_TYPE[ref.target]
        parent = await self.store.get(target.store_type, doc[field]["id"])
        if parent is None:
            raise not_found()
        return target, await self.present(target, parent)

    async def present(self, spec: EntitySpec, doc: Doc) -> Doc:
        return await present(self.store, spec, doc)

    # ------------------------------------------------------------------ writes

    async def create(
        self,
        spec: EntitySpec,
        body: dict[str, Any],
        scope: Scope | None,
        *,
        skip_hash: bool = False,
    ) -> Doc:
        body, ttl = take_ttl_option(spec, body)
        given_id = body.get("id")
        if given_id is not None and not isinstance(given_id, str):
            raise schema_violation([(("id",), "expected a string")])
        entity_id = given_id or str(uuid.uuid4())
        if scope is not None:
            body = {**body, scope.field: {"id": scope.parent_id}}
        async with self.store.transaction() as tx:
            result = await self._save(
                tx, spec, "insert", body, body, entity_id, None, skip_hash=skip_hash, ttl=ttl
            )
        await self.notify()
        return result

    async def upsert(
        self,
        spec: EntitySpec,
        key: str,
        body: dict[str, Any],
        scope: Scope | None,
        *,
        skip_hash: bool = False,
    ) -> Doc:
        body, ttl = take_ttl_option(spec, body)
        if scope is not None:
            body[scope.field] = {"id": scope.parent_id}
        async with self.store.transaction() as tx:
            existing = await find(tx, spec, key, scope.pair if scope else None)
            if existing is None and scope is not None and spec.store_type != "targets":
                existing = await find(tx, spec, key)  # PUT under another parent moves it
            if is_uuid(key):
                entity_id = key
            else:
                field = spec.endpoint_key
                if field is None:
                    raise not_found()
                if body.get(field) is not None and body[field] != key:
                    raise schema_violation(
                        [((field,), f"must match the '{field}' in the URL ('{key}')")]
                    )
                body[field] = key
                entity_id = str(existing["id"]) if existing else str(body.get("id") or uuid.uuid4())
            result = await self._save(
                tx, spec, "upsert", body, body, entity_id, existing, skip_hash=skip_hash, ttl=ttl
            )
        await self.notify()
        return result

    async def patch(
        self,
        spec: EntitySpec,
        key: str,
        body: dict[str, Any],
        scope: Scope | None,
        *,
        skip_hash: bool = False,
    ) -> Doc:
        body, ttl = take_ttl_option(spec, body)
        async with self.store.transaction() as tx:
            existing = await find(tx, spec, key, scope.pair if scope else None)
            if existing is None:
                raise not_found()
            base = {k: v for k, v in existing.items() if k not in SERVER_FIELDS}
            references = frozenset(ref.field for ref in spec.references)
            merged = merge(base, body, references)
            if scope is not None:
                merged[scope.field] = {"id": scope.parent_id}
            result = await self._save(
                tx, spec, "update", merged, body, str(existing["id"]), existing,
                skip_hash=skip_hash, ttl=ttl,
            )  # fmt: skip
        await self.notify()
        return result

    async def delete(self, spec: EntitySpec, key: str, scope: Scope | None) -> None:
        """Delete with Kong's cascades; a missing entity is not an error (204 either way)."""
        async with self.store.transaction() as tx:
            existing = await find(tx, spec, key, scope.pair if scope else None)
            if existing is None:
                return
            await delete_cascade(tx, spec, existing)
        await self.notify()

    async def _save(
        self,
        tx: Transaction,
        spec: EntitySpec,
        mode: str,
        document: dict[str, Any],
        body: Mapping[str, Any],
        entity_id: str,
        existing: Doc | None,
        *,
        skip_hash: bool,
        ttl: int | None = None,
    ) -> Doc:
        """Validate ``document``, write it (``mode``: insert/upsert/update), sync a certificate's
        SNIs from the request ``body``; returns the entity as the API shows it.  ``ttl``: the
        ``ttl`` option of the request (None when not given)."""
        if ttl is not None:
            document = {**document, "ttl": stored_ttl(ttl, existing, time.time())}
        doc = await build_document(
            tx, spec, document, entity_id=entity_id, existing=existing,
            new_password="password" in body, skip_hash=skip_hash,
        )  # fmt: skip
        await drop_expired_holders(tx, spec, doc)
        stored = await _write(tx, spec, mode, doc)
        await self._sync_snis(tx, spec, stored, body)
        return await present(tx, spec, stored)

    async def _sync_snis(
        self, tx: Transaction, spec: EntitySpec, certificate: Doc, body: Mapping[str, Any]
    ) -> None:
        """A certificate written with ``snis`` gets exactly those SNIs (Kong's transient field)."""
        if spec.store_type != "certificates" or body.get("snis") is None:
            return
        names = body["snis"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise schema_violation([(("snis",), "expected an array of strings")])
        sni_spec = BY_TYPE["snis"]
        current = await _all(tx, "snis", {"certificate.id": certificate["id"]})
        for sni in current:
            if sni["name"] not in names:
                await tx.delete("snis", sni["id"])
        kept = {sni["name"] for sni in current}
        for name in dict.fromkeys(names):
            if name in kept:
                continue
            doc = await build_document(
                tx, sni_spec, {"name": name, "certificate": {"id": certificate["id"]}},
                entity_id=str(uuid.uuid4()), existing=None, new_password=False,
            )  # fmt: skip
            await _write(tx, sni_spec, "insert", doc)


async def present(reader: StoreReader, spec: EntitySpec, doc: Doc) -> Doc:
    """The document as the Admin API shows it (certificates list their SNI names, credentials
    their ttl left)."""
    if has_ttl(spec):
        return shown(spec, doc)
    if spec.store_type != "certificates":
        return doc
    names = [sni["name"] for sni in await _all(reader, "snis", {"certificate.id": doc["id"]})]
    return {**doc, "snis": sorted(names)}


async def _write(tx: Transaction, spec: EntitySpec, mode: str, doc: Doc) -> Doc:
    keys = spec.unique_keys(doc)
    try:
        if mode == "insert":
            return await tx.insert(spec.store_type, doc, unique_keys=keys)
        if mode == "upsert":
            return await tx.upsert(spec.store_type, doc["id"], doc, unique_keys=keys)
        return await tx.update(spec.store_type, doc["id"], doc, unique_keys=keys)
    except UniqueViolation as exc:
        if exc.key_name == "id":
            raise primary_key_violation(exc.value) from None
        raise unique_violation(unique_error_fields(spec, exc.key_name, doc)) from None


async def _all(
    reader: StoreReader, entity_type: str, filters: Mapping[str, str | None]
) -> list[Doc]:
    docs: list[Doc] = []
    offset: str | None = None
    while True:
        page = await reader.list(entity_type, size=1000, offset=offset, filter=filters)
        docs += page.data
        if page.next_offset is None:
            return docs
        offset = page.next_offset


async def delete_cascade(tx: Transaction, spec: EntitySpec, doc: Doc) -> None:
    """Delete ``doc``: refuse when a ``restrict`` reference points at it, else delete the
    entities whose ``cascade`` references point at it (recursively) first."""
    entity_id = str(doc["id"])
    children = referencing(spec.store_type)
    for child_spec, ref in children:
        if ref.on_delete == "restrict":
            page = await tx.list(
                child_spec.store_type, size=1, filter={f"{ref.field}.id": entity_id}
            )
            if page.data:
                raise referenced_by(child_spec.store_type, spec.store_type)
    for child_spec, ref in children:
        if ref.on_delete == "cascade":
            for child in await _all(tx, child_spec.store_type, {f"{ref.field}.id": entity_id}):
                await delete_cascade(tx, child_spec, child)
    await tx.delete(spec.store_type, entity_id)
