"""``targetRef``: what a policy (or one of its ``to``/``from`` items) points at, and its rank.

Kinds, as in Kuma 2.x: ``Mesh`` (everything), ``Dataplane`` (top level only: dataplanes whose
``labels`` include ``labels``, or the one called ``name``), ``MeshSubset`` (proxies or clients
whose tags include ``tags``), ``MeshService`` (the service ``name``), ``MeshServiceSubset``
(``name`` plus ``tags``).  ``KIND_RANK`` is Kuma's specificity order: a higher rank is more specific and wins
when policies are merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import model_validator

from meshgate.resources.kong_common import EntityViolations, Loc
from meshgate.resources.mesh.base import SERVICE_TAG, MeshModel, Name, Tags

TargetKind = Literal[
    "Mesh", "Dataplane", "MeshSubset", "MeshService", "MeshServiceSubset", "MeshHTTPRoute"
]

KIND_RANK: dict[str, int] = {
    "Mesh": 1,
    "Dataplane": 2,
    "MeshSubset": 3,
    "MeshService": 5,
    "MeshServiceSubset": 8,
    "MeshHTTPRoute": 9,
}


class TargetRef(MeshModel):
    """A reference to part of the mesh; which fields go with which kind is checked."""

    kind: TargetKind
    name: Name | None = None
    tags: Tags | None = None
    labels: Tags | None = None

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> TargetRef:
        problems: list[tuple[Loc, str]] = []
        needs_name = self.kind in ("MeshService", "MeshServiceSubset", "MeshHTTPRoute")
        takes_name = needs_name or self.kind == "Dataplane"
        takes_tags = self.kind in ("MeshSubset", "MeshServiceSubset")
        if needs_name and self.name is None:
            problems.append((("name",), f"required for kind {self.kind}"))
        if not takes_name and self.name is not None:
            problems.append((("name",), f"not allowed for kind {self.kind}"))
        if not takes_tags and self.tags is not None:
            problems.append((("tags",), f"not allowed for kind {self.kind}"))
        if self.kind != "Dataplane" and self.labels is not None:
            problems.append((("labels",), f"not allowed for kind {self.kind}"))
        if self.kind == "Dataplane" and self.name is not None and self.labels is not None:
            problems.append((("labels",), "give either name or labels"))
        if problems:
            raise EntityViolations(problems)
        return self

    @property
    def rank(self) -> int:
        return KIND_RANK[self.kind]

    def required_tags(self) -> dict[str, str]:
        """The tags a proxy or client must carry to be selected (empty for ``Mesh``)."""
        tags = dict(self.tags or {})
        if self.kind in ("MeshService", "MeshServiceSubset") and self.name is not None:
            tags[SERVICE_TAG] = self.name
        return tags

    def selects(self, tags: Mapping[str, str]) -> bool:
        """Whether something carrying ``tags`` is selected by this reference."""
        if self.kind in ("MeshHTTPRoute", "Dataplane"):
            return False
        return all(tags.get(key) == value for key, value in self.required_tags().items())

    def selects_any(self, tag_sets: Iterable[Mapping[str, str]]) -> bool:
        return any(self.selects(tags) for tags in tag_sets)

    def selects_dataplane(
        self, name: str, labels: Mapping[str, str], tag_sets: Iterable[Mapping[str, str]]
    ) -> bool:
        """Top-level selection: of a dataplane by its name and labels, or by its inbounds' tags."""
        if self.kind == "Mesh":
            return True
        if self.kind == "Dataplane":
            if self.name is not None:
                return self.name == name
            return all(labels.get(k) == v for k, v in (self.labels or {}).items())
        return self.selects_any(tag_sets)

    def label(self) -> str:
        """A short text for ``inspect``: ``Mesh``, ``MeshService/orders``, ``MeshSubset{v=1}``."""
        text = self.kind if self.name is None else f"{self.kind}/{self.name}"
        selector = self.tags or self.labels
        if selector:
            text += "{" + ",".join(f"{k}={v}" for k, v in sorted(selector.items())) + "}"
        return text


MESH = TargetRef(kind="Mesh")


def check_kinds(ref: TargetRef, allowed: Iterable[str], loc: Loc) -> list[tuple[Loc, str]]:
    """A violation at ``loc + ("kind",)`` if ``ref.kind`` is not among ``allowed``."""
    allowed = tuple(allowed)
    if ref.kind in allowed:
        return []
    return [((*loc, "kind"), f"must be one of {', '.join(allowed)} here, not {ref.kind}")]
