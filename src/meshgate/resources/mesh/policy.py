"""The policy envelope (``type/name/mesh/labels/spec``) and the pieces every policy spec shares.

A policy's ``spec`` has a top-level ``targetRef`` (which proxies it changes; omitted = the
whole mesh) and, depending on the policy, ``to`` items (outbound: per destination) and/or
``from`` items (inbound: per client), each with its own ``targetRef`` and a ``default``
configuration.  Concrete specs subclass ``PolicySpec`` and say which kinds each level takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ValidationError, model_validator

from meshgate.errors import ConfigError, Violation
from meshgate.resources.kong_common import EntityViolations, Loc
from meshgate.resources.mesh.base import MeshModel, Name
from meshgate.resources.mesh.targetref import MESH, TargetRef, check_kinds
from meshgate.resources.violations import violations_from

C = TypeVar("C", bound=BaseModel)

TOP_KINDS = ("Mesh", "Dataplane", "MeshSubset", "MeshService", "MeshServiceSubset")


class ToItem(MeshModel, Generic[C]):
    """Configuration for traffic to the destinations ``target_ref`` selects."""

    target_ref: TargetRef
    default: C


class FromItem(MeshModel, Generic[C]):
    """Configuration for traffic from the clients ``target_ref`` selects."""

    target_ref: TargetRef
    default: C


class PolicySpec(MeshModel):
    """Base of policy specs: the top-level ``targetRef`` and the kind rules of each level."""

    TOP_KINDS: ClassVar[tuple[str, ...]] = TOP_KINDS
    TO_KINDS: ClassVar[tuple[str, ...]] = ("Mesh", "MeshService")
    FROM_KINDS: ClassVar[tuple[str, ...]] = ("Mesh",)

    target_ref: TargetRef = MESH

    def to_items(self) -> Sequence[Any]:
        return tuple(getattr(self, "to", ()))

    def from_items(self) -> Sequence[Any]:
        return tuple(getattr(self, "from_", ()))

    @model_validator(mode="after")
    def _kinds_fit_levels(self) -> PolicySpec:
        problems: list[tuple[Loc, str]] = check_kinds(
            self.target_ref, self.TOP_KINDS, ("targetRef",)
        )
        for index, item in enumerate(self.to_items()):
            problems += check_kinds(item.target_ref, self.TO_KINDS, ("to", index, "targetRef"))
        for index, item in enumerate(self.from_items()):
            problems += check_kinds(item.target_ref, self.FROM_KINDS, ("from", index, "targetRef"))
        has_to, has_from = "to" in type(self).model_fields, "from_" in type(self).model_fields
        if (has_to or has_from) and not self.to_items() and not self.from_items():
            levels = " or ".join(name for name, has in (("to", has_to), ("from", has_from)) if has)
            problems.append(((), f"at least one {levels} item is required"))
        if problems:
            raise EntityViolations(problems)
        return self


@dataclass(frozen=True, slots=True)
class Policy:
    """One validated policy resource."""

    type: str
    name: str
    mesh: str
    spec: PolicySpec
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        """The resource as Kuma's Universal YAML/JSON shape."""
        return {
            "type": self.type,
            "name": self.name,
            "mesh": self.mesh,
            **({"labels": dict(self.labels)} if self.labels else {}),
            "spec": self.spec.model_dump(by_alias=True, exclude_unset=True, mode="json"),
        }


class _Envelope(MeshModel):
    type: str
    name: Name
    mesh: Name = "default"
    labels: dict[str, str] = {}
    spec: dict[str, Any]


def parse_policy(
    doc: Mapping[str, Any], spec_types: Mapping[str, type[PolicySpec]], prefix: str = ""
) -> Policy:
    """Validate a policy document; ``ConfigError`` lists every violation with its path."""
    try:
        envelope = _Envelope.model_validate(doc)
    except ValidationError as exc:
        violations = violations_from(exc, prefix)
        spec_type = spec_types.get(str(doc.get("type")))
        if spec_type is not None and isinstance(doc.get("spec"), dict):
            violations += _spec_violations(spec_type, doc["spec"], prefix)
        raise ConfigError(violations) from None
    spec_type = spec_types.get(envelope.type)
    if spec_type is None:
        known = ", ".join(sorted(spec_types))
        raise ConfigError(
            [Violation(_join(prefix, "type"), f"unknown policy type; one of {known}")]
        )
    try:
        spec = spec_type.model_validate(envelope.spec)
    except ValidationError as exc:
        raise ConfigError(violations_from(exc, _join(prefix, "spec"))) from None
    return Policy(envelope.type, envelope.name, envelope.mesh, spec, envelope.labels)


def _spec_violations(
    spec_type: type[PolicySpec], spec: dict[str, Any], prefix: str
) -> list[Violation]:
    try:
        spec_type.model_validate(spec)
    except ValidationError as exc:
        return violations_from(exc, _join(prefix, "spec"))
    return []


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
