"""Snapshots in the sidecar's serving process, without pydantic.

The serving process decodes what its control plane pushes, and what it cached on disk, into
the msgspec Structs of ``snapshot_structs`` (generated from ``snapshot``'s models: the same
fields, types, bounds and defaults; unknown fields refused).  The proxy runtime reads a
snapshot only by attribute, so it runs on these as on the pydantic models; they are typed as
the models they mirror.  Leaving pydantic out keeps ~20 MB out of every sidecar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

import msgspec

from meshgate import snapshot_structs

if TYPE_CHECKING:
    from meshgate import snapshot

T = TypeVar("T")


def from_builtins(raw: Any) -> snapshot.Snapshot:
    """A snapshot from decoded JSON; ``msgspec.ValidationError`` (a ``ValueError``) naming the
    first wrong field's path when it does not fit."""
    return cast("snapshot.Snapshot", msgspec.convert(raw, snapshot_structs.Snapshot))


def from_json(data: bytes) -> snapshot.Snapshot:
    """A snapshot from its JSON text; ``ValueError`` as ``from_builtins``."""
    return cast("snapshot.Snapshot", msgspec.json.decode(data, type=snapshot_structs.Snapshot))


def to_json(snap: snapshot.Snapshot) -> bytes:
    """The JSON of a decoded snapshot (defaults left out, as the control plane sends it)."""
    return msgspec.json.encode(snap)


def replace(item: T, **changes: Any) -> T:
    """A copy of a decoded snapshot item with ``changes``."""
    return cast(T, msgspec.structs.replace(cast(Any, item), **changes))
