"""The mesh state the engine compiles from, kept current change by change.

``MeshState`` holds every mesh resource of the store, validated.  It is loaded whole at start
(``load_state``) and then changed one resource at a time (``apply_document``, ``put_dataplane``,
``remove_dataplane``), each change noted in a ``Delta``: what the next push pass must look at.
A policy or ``Mesh`` change concerns every sidecar of its mesh; a dataplane change concerns the
dataplane itself and the sidecars that reach one of the services its inbounds belong to (the
endpoints of those services are what other snapshots take from it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshgate.controlplane.distribution.storage import KINDS, PREFIX, entity_type, strip_id
from meshgate.policies import parse_resource
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.mesh import Mesh
from meshgate.resources.mesh.policy import Policy
from meshgate.store.api import Entity, Store

Key = tuple[str, str]  # (mesh, dataplane name)
MESHES = entity_type("meshes")
DATAPLANES = entity_type("dataplanes")


@dataclass
class Delta:
    """What changed since the last push pass."""

    meshes: set[str] = field(default_factory=set)  # the mesh or its policies: every sidecar
    services: dict[str, set[str]] = field(default_factory=dict)  # mesh → changed services
    dataplanes: set[Key] = field(default_factory=set)  # dataplanes whose own resource changed
    touched: set[str] = field(default_factory=set)  # every mesh with any change

    def __bool__(self) -> bool:
        return bool(self.touched)

    def whole_mesh(self, mesh: str) -> None:
        self.meshes.add(mesh)
        self.touched.add(mesh)

    def dataplane(self, key: Key, services: Iterable[str]) -> None:
        self.dataplanes.add(key)
        self.services.setdefault(key[0], set()).update(services)
        self.touched.add(key[0])

    def merge(self, other: Delta) -> None:
        self.meshes |= other.meshes
        self.dataplanes |= other.dataplanes
        self.touched |= other.touched
        for mesh, services in other.services.items():
            self.services.setdefault(mesh, set()).update(services)

    def affects(self, key: Key, depends_on: frozenset[str] | None) -> bool:
        """Whether the sidecar ``key``, whose snapshot took endpoints of the services
        ``depends_on`` (None: unknown), may get another snapshot from these changes."""
        mesh = key[0]
        if mesh not in self.touched:
            return False
        if mesh in self.meshes or key in self.dataplanes or depends_on is None:
            return True
        return not depends_on.isdisjoint(self.services.get(mesh, ()))


def _endpoint_inputs(dataplane: Dataplane) -> tuple[Any, ...]:
    """What other snapshots take from ``dataplane`` (its inbounds as endpoints)."""
    networking = dataplane.networking
    return (networking.address, tuple(networking.inbound))


def _inbound_services(dataplane: Dataplane | None) -> set[str]:
    if dataplane is None:
        return set()
    return {inbound.service for inbound in dataplane.networking.inbound}


def changed_services(before: Dataplane | None, after: Dataplane | None) -> set[str]:
    """The services whose endpoints may differ when ``before`` becomes ``after``."""
    if (
        before is not None
        and after is not None
        and _endpoint_inputs(before) == _endpoint_inputs(after)
    ):
        return set()
    return _inbound_services(before) | _inbound_services(after)


@dataclass
class MeshState:
    """Every mesh resource at one store revision, validated."""

    revision: int = 0
    meshes: dict[str, Mesh] = field(default_factory=dict)
    dataplanes: dict[str, dict[str, Dataplane]] = field(default_factory=dict)
    # per mesh: (policy type, name) → policy
    policies: dict[str, dict[tuple[str, str], Policy]] = field(default_factory=dict)

    def dataplane(self, mesh: str, name: str) -> Dataplane | None:
        return self.dataplanes.get(mesh, {}).get(name)

    def mesh_dataplanes(self, mesh: str) -> list[Dataplane]:
        return list(self.dataplanes.get(mesh, {}).values())

    def mesh_policies(self, mesh: str) -> list[Policy]:
        return list(self.policies.get(mesh, {}).values())

    # ------------------------------------------------------------------ changes

    def put_dataplane(self, dataplane: Dataplane, delta: Delta) -> None:
        """Insert or replace ``dataplane``; an identical copy changes nothing."""
        current = self.dataplane(dataplane.mesh, dataplane.name)
        if current == dataplane:
            return
        self.dataplanes.setdefault(dataplane.mesh, {})[dataplane.name] = dataplane
        key = (dataplane.mesh, dataplane.name)
        delta.dataplane(key, changed_services(current, dataplane))

    def remove_dataplane(self, mesh: str, name: str, delta: Delta) -> None:
        current = self.dataplanes.get(mesh, {}).pop(name, None)
        if current is not None:
            delta.dataplane((mesh, name), changed_services(current, None))

    def put_policy(self, policy: Policy, delta: Delta) -> None:
        policies = self.policies.setdefault(policy.mesh, {})
        if policies.get((policy.type, policy.name)) != policy:
            policies[(policy.type, policy.name)] = policy
            delta.whole_mesh(policy.mesh)

    def remove_policy(self, mesh: str, policy_type: str, name: str, delta: Delta) -> None:
        if self.policies.get(mesh, {}).pop((policy_type, name), None) is not None:
            delta.whole_mesh(mesh)

    def put_mesh(self, mesh: Mesh, delta: Delta) -> None:
        if self.meshes.get(mesh.name) != mesh:
            self.meshes[mesh.name] = mesh
            delta.whole_mesh(mesh.name)

    def remove_mesh(self, name: str, delta: Delta) -> None:
        if self.meshes.pop(name, None) is not None:
            delta.whole_mesh(name)

    def apply_document(
        self, kind: str, ident: str, doc: Mapping[str, Any] | None, delta: Delta
    ) -> None:
        """Make the entity ``kind``/``ident`` what the store holds now (``doc``, None: gone).

        A document that no longer validates counts as gone, as in ``state_from_entities``.
        """
        resource = None
        if doc is not None:
            try:
                resource = parse_resource(strip_id(doc))
            except Exception:
                resource = None
        if resource is not None:
            self.put(resource, delta)
        elif kind == MESHES:
            self.remove_mesh(ident, delta)
        else:
            mesh, _, name = ident.partition("/")
            if kind == DATAPLANES:
                self.remove_dataplane(mesh, name, delta)
            elif kind.startswith(PREFIX) and kind[len(PREFIX) :] in KINDS:
                self.remove_policy(mesh, KINDS[kind[len(PREFIX) :]], name, delta)

    def put(self, resource: Mesh | Dataplane | Policy, delta: Delta) -> None:
        if isinstance(resource, Mesh):
            self.put_mesh(resource, delta)
        elif isinstance(resource, Dataplane):
            self.put_dataplane(resource, delta)
        else:
            self.put_policy(resource, delta)


def diff_states(old: MeshState, fresh: MeshState) -> Delta:
    """What differs between two whole states (a full reload)."""
    delta = Delta()
    for name in set(old.meshes) | set(fresh.meshes):
        if old.meshes.get(name) != fresh.meshes.get(name):
            delta.whole_mesh(name)
    for name in set(old.policies) | set(fresh.policies):
        if old.policies.get(name, {}) != fresh.policies.get(name, {}):
            delta.whole_mesh(name)
    for mesh in set(old.dataplanes) | set(fresh.dataplanes):
        before, after = old.dataplanes.get(mesh, {}), fresh.dataplanes.get(mesh, {})
        for name in set(before) | set(after):
            was, now = before.get(name), after.get(name)
            if was != now:
                delta.dataplane((mesh, name), changed_services(was, now))
    return delta


def state_from_entities(revision: int, entities: Iterable[Entity]) -> MeshState:
    """Build the state from stored entities; entities that no longer validate are skipped."""
    state = MeshState(revision=revision)
    ignored = Delta()
    for entity in entities:
        if not entity.type.startswith(PREFIX):
            continue
        try:
            resource = parse_resource(strip_id(entity.doc))
        except Exception:
            continue
        state.put(resource, ignored)
    return state


async def load_state(store: Store) -> MeshState:
    dump = await store.dump_all()
    return state_from_entities(dump.revision, dump.entities)
