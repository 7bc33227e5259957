"""Where mesh roots live: a two-method interface, backed by the store or by memory.

The store keeps each root as a document of type ``mesh_ca`` with id ``<mesh>.<backend>``:
``{"mesh", "backend", "cert", "key"}`` (PEM; the key is stored as is, like Kuma's builtin CA
secrets — protect the database accordingly).
"""

from __future__ import annotations

from typing import Protocol

from meshgate.controlplane.ca.certs import RootCA
from meshgate.store.api import Store
from meshgate.store.errors import UniqueViolation

CA_DOC_TYPE = "mesh_ca"


class CAStorage(Protocol):
    async def get_root(self, mesh: str, backend: str) -> RootCA | None: ...

    async def create_root(self, mesh: str, backend: str, root: RootCA) -> RootCA:
        """Keep ``root`` unless a root is already stored; returns the stored one."""
        ...


def root_doc_id(mesh: str, backend: str) -> str:
    return f"{mesh}.{backend}"


class StoreCAStorage:
    """Roots as ``mesh_ca`` documents of a ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get_root(self, mesh: str, backend: str) -> RootCA | None:
        doc = await self.store.get(CA_DOC_TYPE, root_doc_id(mesh, backend))
        if doc is None:
            return None
        return RootCA(cert=str(doc["cert"]), key=str(doc["key"]))

    async def create_root(self, mesh: str, backend: str, root: RootCA) -> RootCA:
        doc_id = root_doc_id(mesh, backend)
        doc = {"id": doc_id, "mesh": mesh, "backend": backend, "cert": root.cert, "key": root.key}
        try:
            await self.store.insert(CA_DOC_TYPE, doc, unique_keys=())
        except UniqueViolation:  # another control plane created it first: use theirs
            stored = await self.get_root(mesh, backend)
            if stored is None:
                raise
            return stored
        return root


class MemoryCAStorage:
    """Roots in a dict (tests, and a control plane that may lose its CA on restart)."""

    def __init__(self) -> None:
        self.roots: dict[tuple[str, str], RootCA] = {}

    async def get_root(self, mesh: str, backend: str) -> RootCA | None:
        return self.roots.get((mesh, backend))

    async def create_root(self, mesh: str, backend: str, root: RootCA) -> RootCA:
        return self.roots.setdefault((mesh, backend), root)
