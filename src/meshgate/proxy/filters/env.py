"""``SnapshotEnv``: the ``CompileEnv`` handlers are built with — the snapshot being compiled,
its consumers and credentials indexed once, and node-wide resources that outlive snapshots.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshgate.snapshot import Consumer, Snapshot


class SnapshotEnv:
    """Implements ``meshgate.proxy.filters.api.CompileEnv``."""

    def __init__(self, snap: Snapshot, node_resources: dict[str, Any] | None = None) -> None:
        self._snapshot = snap
        self._resources = node_resources if node_resources is not None else {}
        self._consumers: dict[str, Consumer] | None = None
        self._credentials: dict[str, list[tuple[Consumer, Mapping[str, Any]]]] | None = None

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    def consumers_by_id(self) -> Mapping[str, Consumer]:
        if self._consumers is None:
            self._consumers = {c.id: c for c in self._snapshot.consumers}
        return self._consumers

    def credentials(self, kind: str) -> Sequence[tuple[Consumer, Mapping[str, Any]]]:
        if self._credentials is None:
            index: dict[str, list[tuple[Consumer, Mapping[str, Any]]]] = {}
            for consumer in self._snapshot.consumers:
                for cred_kind, records in consumer.credentials.items():
                    bucket = index.setdefault(cred_kind, [])
                    bucket.extend((consumer, record) for record in records)
            self._credentials = index
        return self._credentials.get(kind, [])

    def node_resource(self, key: str, factory: Callable[[], Any]) -> Any:
        resource = self._resources.get(key)
        if resource is None:
            resource = self._resources[key] = factory()
        return resource
