"""Mesh resources in the config store: collections, documents, keys, writes.

Each resource kind is a store entity type ``mesh.<collection>`` (Kuma's plural, lower-case
collection names: ``mesh.meshes``, ``mesh.dataplanes``, ``mesh.meshtrafficpermissions``…).
Ids are ``<name>`` for meshes and ``<mesh>/<name>`` for everything else, so names are unique
per mesh.  Documents are Kuma's Universal shape: policies ``{type, name, mesh, labels, spec}``;
``Mesh`` and ``Dataplane`` with their fields beside ``type`` (``networking``, ``mtls``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshgate.policies import SPEC_TYPES, default_resources, parse_resource
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.documents import MeshResource
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import Policy
from meshgate.store.api import Store, Transaction
from meshgate.store.errors import UniqueViolation

PREFIX = "mesh."
STATUS_TYPE = "mesh_dp_status"
"""A dataplane's status record (``status_records``); it goes with its Dataplane and mesh."""


def collection_of(kind: str) -> str:
    """``MeshRetry`` → ``meshretries``; ``Dataplane`` → ``dataplanes``; ``Mesh`` → ``meshes``."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("h"):
        return lower + "es"
    return lower + "s"


KINDS: dict[str, str] = {collection_of(kind): kind for kind in ("Dataplane", *SPEC_TYPES)}
"""Mesh-scoped collection → resource type."""


def entity_type(collection: str) -> str:
    return PREFIX + collection


def entity_id(mesh: str, name: str) -> str:
    return f"{mesh}/{name}"


def to_document(resource: MeshResource) -> dict[str, Any]:
    """The JSON document the API serves and the store keeps."""
    if isinstance(resource, Policy):
        return resource.to_document()
    body = resource.model_dump(by_alias=True, exclude_unset=True, mode="json")
    head: dict[str, Any] = {"type": resource.type, "name": resource.name}
    if isinstance(resource, Dataplane):
        head["mesh"] = resource.mesh
    head["labels"] = dict(resource.labels)
    return {**head, **{k: v for k, v in body.items() if k not in head}}


async def put_resource(tx: Transaction, resource: MeshResource) -> bool:
    """Insert or replace one resource; True when it was created. Unchanged docs are kept."""
    doc = to_document(resource)
    if isinstance(resource, Mesh):
        kind, ident = entity_type("meshes"), resource.name
    else:
        kind = entity_type(collection_of(resource.type))
        ident = entity_id(resource.mesh, resource.name)
    stored = await tx.get(kind, ident)
    if stored is not None and _same(stored, doc):
        return False
    await tx.upsert(kind, ident, {**doc, "id": ident}, unique_keys=())
    return stored is None


async def create_mesh(store: Store, mesh: Mesh) -> bool:
    """Put ``mesh``; a new mesh also gets its default policies. True when it was created."""
    async with store.transaction() as tx:
        created = await put_resource(tx, mesh)
        if created:
            for policy in default_resources(mesh):
                await put_resource(tx, policy)
    return created


async def ensure_mesh(store: Store, name: str = "default") -> bool:
    """Create the mesh ``name`` (with its defaults) unless it exists; True when created.

    Replicas starting together may all call it: the mesh is inserted (not upserted), so
    exactly one creates it with its default policies and the others change nothing."""
    if await store.get(entity_type("meshes"), name) is not None:
        return False
    resource = parse_resource({"type": "Mesh", "name": name})
    assert isinstance(resource, Mesh)
    try:
        async with store.transaction() as tx:
            doc = {**to_document(resource), "id": name}
            await tx.insert(entity_type("meshes"), doc, unique_keys=())
            for policy in default_resources(resource):
                await put_resource(tx, policy)
    except UniqueViolation:
        return False
    return True


async def delete_mesh(store: Store, mesh: str) -> bool:
    """Delete a mesh and every resource in it; False when there was no such mesh."""
    async with store.transaction() as tx:
        if not await tx.delete(entity_type("meshes"), mesh):
            return False
        for collection in KINDS:
            await tx.delete_many(entity_type(collection), filter={"mesh": mesh})
        await tx.delete_many(STATUS_TYPE, filter={"mesh": mesh})
    return True


async def delete_resource(store: Store, collection: str, mesh: str, name: str) -> bool:
    """Delete one mesh-scoped resource (a Dataplane with its status record); False when there
    was no such resource."""
    ident = entity_id(mesh, name)
    async with store.transaction() as tx:
        if not await tx.delete(entity_type(collection), ident):
            return False
        if collection == "dataplanes":
            await tx.delete(STATUS_TYPE, ident)
    return True


def strip_id(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "id"}


def _same(stored: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    return strip_id(stored) == doc
