"""Which policies apply to a dataplane, in what order, and their ``default``s merged.

Kuma's rules (reference mesh-kuma.md §5.2-5.3):

* a policy applies to a dataplane when its top-level ``targetRef`` selects the dataplane
  (``Mesh``: every one; ``Dataplane``: by name or labels) or one of its inbounds (by tags);
* applicable policies are ordered from least to most important: by the specificity of the
  top-level kind (Mesh < Dataplane < MeshSubset < MeshService < MeshServiceSubset), then by
  name, where the
  lexicographically *smaller* name is more important (Kuma 2.10+: "zzz" lowest, "aaa" highest);
* ``to`` items of all applicable policies are concatenated in that order and sorted again
  (stably) by the specificity of their own ``targetRef``; ``from`` items keep policy order;
* the ``default``s of the items that select a destination (or client) are folded with JSON
  merge patch (RFC 7386): objects merge recursively, ``null`` removes, lists are replaced —
  except fields named ``append…``, whose lists are concatenated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.policy import Policy


def json_merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` (neither is modified); ``append*`` lists concatenate."""
    if not isinstance(patch, Mapping):
        return patch
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif key.startswith("append") and isinstance(value, list):
            previous = result.get(key)
            result[key] = [*(previous if isinstance(previous, list) else []), *value]
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def order_policies(policies: Iterable[Policy]) -> list[Policy]:
    """Least important first: top-level kind rank, then name descending (``a`` wins over ``b``)."""
    by_name = sorted(policies, key=lambda p: p.name, reverse=True)
    return sorted(by_name, key=lambda p: p.spec.target_ref.rank)


def applicable(
    policies: Iterable[Policy],
    policy_type: str,
    dataplane: Dataplane,
    inbound_tags: Mapping[str, str] | None = None,
) -> list[Policy]:
    """The policies of ``policy_type`` in the dataplane's mesh that select it, ordered.

    With ``inbound_tags``, only policies selecting that one inbound (for ``from`` rules).
    """
    tag_sets = dataplane.tag_sets() if inbound_tags is None else [inbound_tags]
    chosen = [
        p
        for p in policies
        if p.type == policy_type
        and p.mesh == dataplane.mesh
        and p.spec.target_ref.selects_dataplane(dataplane.name, dataplane.labels, tag_sets)
    ]
    return order_policies(chosen)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a piece of merged configuration came from (for ``inspect``)."""

    policy: str
    level: str  # "to[0]", "from[1]", "rules[0]"
    target: str  # the item's targetRef as text

    def as_dict(self) -> dict[str, str]:
        return {"policy": self.policy, "level": self.level, "targetRef": self.target}


@dataclass(frozen=True, slots=True)
class Contribution:
    """One ``to``/``from`` item of an applicable policy, with its place in the order."""

    policy: Policy
    level: str
    index: int
    item: Any

    @property
    def origin(self) -> Origin:
        return Origin(self.policy.name, f"{self.level}[{self.index}]", self.item.target_ref.label())

    def default_patch(self) -> dict[str, Any]:
        dumped = self.item.default.model_dump(by_alias=True, exclude_unset=True, mode="json")
        return dict(dumped)


@dataclass(frozen=True, slots=True)
class Merged:
    """The folded ``default`` for one destination or client, and what contributed to it."""

    conf: dict[str, Any]
    origins: tuple[Origin, ...] = ()
    contributions: tuple[Contribution, ...] = field(default=(), repr=False)


def to_contributions(ordered: Sequence[Policy]) -> list[Contribution]:
    """Every ``to`` item of ``ordered`` policies, sorted stably by the item's kind rank."""
    items = [
        Contribution(policy, "to", index, item)
        for policy in ordered
        for index, item in enumerate(policy.spec.to_items())
    ]
    return sorted(items, key=lambda c: c.item.target_ref.rank)


def from_contributions(ordered: Sequence[Policy]) -> list[Contribution]:
    """Every ``from`` item of ``ordered`` policies, in policy order (later ones win)."""
    return [
        Contribution(policy, "from", index, item)
        for policy in ordered
        for index, item in enumerate(policy.spec.from_items())
    ]


def fold(contributions: Iterable[Contribution]) -> Merged | None:
    """Merge the ``default`` of each contribution in order; None when there are none."""
    chosen = tuple(contributions)
    if not chosen:
        return None
    conf: dict[str, Any] = {}
    for contribution in chosen:
        conf = json_merge_patch(conf, contribution.default_patch())
    return Merged(conf, tuple(c.origin for c in chosen), chosen)


def merged_to(ordered: Sequence[Policy], destination_tags: Mapping[str, str]) -> Merged | None:
    """The merged ``to`` configuration for traffic to a destination carrying these tags."""
    return fold(c for c in to_contributions(ordered) if c.item.target_ref.selects(destination_tags))


def merged_from(ordered: Sequence[Policy], client_tags: Mapping[str, str]) -> Merged | None:
    """The merged ``from`` configuration for traffic from a client carrying these tags."""
    return fold(c for c in from_contributions(ordered) if c.item.target_ref.selects(client_tags))
