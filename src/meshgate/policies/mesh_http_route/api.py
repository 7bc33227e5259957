"""MeshHTTPRoute: how requests to a destination service are matched, edited and split.

::

    type: MeshHTTPRoute
    name: orders-canary
    spec:
      targetRef: {kind: Mesh}                        # which proxies (clients) use it
      to:
        - targetRef: {kind: MeshService, name: orders}
          rules:
            - matches:
                - path: {type: PathPrefix, value: /v2}     # Exact | PathPrefix | RegularExpression
                  method: GET
                  headers: [{type: Exact, name: x-user, value: alice}]
              default:
                filters:
                  - type: RequestHeaderModifier
                    requestHeaderModifier: {set: [{name: x-canary, value: "1"}]}
                backendRefs:
                  - {kind: MeshService, name: orders-v2, weight: 90}
                  - {kind: MeshServiceSubset, name: orders, tags: {version: v1}, weight: 10}

Header match types: Exact (case-insensitive, as the engine compares), RegularExpression (the
whole value), Prefix, Present.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from meshgate.resources.kong_common import EntityViolations, Loc
from meshgate.resources.mesh.base import MeshModel, Name, Tags
from meshgate.resources.mesh.policy import PolicySpec
from meshgate.resources.mesh.targetref import TargetRef

TYPE = "MeshHTTPRoute"
Method = Literal["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]


def _check_regex(value: str) -> None:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None


class PathMatch(MeshModel):
    type: Literal["Exact", "PathPrefix", "RegularExpression"]
    value: str = Field(min_length=1)

    @model_validator(mode="after")
    def _value_fits_type(self) -> PathMatch:
        if self.type == "RegularExpression":
            _check_regex(self.value)
        elif not self.value.startswith("/"):
            raise EntityViolations([(("value",), "must start with '/'")])
        return self


class HeaderMatch(MeshModel):
    type: Literal["Exact", "RegularExpression", "Prefix", "Present"] = "Exact"
    name: str = Field(min_length=1)
    value: str | None = None

    @model_validator(mode="after")
    def _value_fits_type(self) -> HeaderMatch:
        if self.type == "Present":
            if self.value is not None:
                raise EntityViolations([(("value",), "not allowed for type Present")])
        elif self.value is None:
            raise EntityViolations([(("value",), f"required for type {self.type}")])
        elif self.type == "RegularExpression":
            try:
                _check_regex(self.value)
            except ValueError as exc:
                raise EntityViolations([(("value",), str(exc))]) from None
        return self


class Match(MeshModel):
    path: PathMatch | None = None
    method: Method | None = None
    headers: list[HeaderMatch] = []

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class HeaderValue(MeshModel):
    name: str = Field(min_length=1)
    value: str


class HeaderModifier(MeshModel):
    set: list[HeaderValue] = []
    add: list[HeaderValue] = []
    remove: list[str] = []


class Filter(MeshModel):
    type: Literal["RequestHeaderModifier", "ResponseHeaderModifier"]
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None

    @model_validator(mode="after")
    def _body_fits_type(self) -> Filter:
        problems: list[tuple[Loc, str]] = []
        wanted = "requestHeaderModifier" if self.type == "RequestHeaderModifier" else None
        wanted = wanted or "responseHeaderModifier"
        for field, value in (
            ("requestHeaderModifier", self.request_header_modifier),
            ("responseHeaderModifier", self.response_header_modifier),
        ):
            if field == wanted and value is None:
                problems.append(((field,), f"required for type {self.type}"))
            if field != wanted and value is not None:
                problems.append(((field,), f"not allowed for type {self.type}"))
        if problems:
            raise EntityViolations(problems)
        return self


class BackendRef(MeshModel):
    kind: Literal["MeshService", "MeshServiceSubset"]
    name: Name
    tags: Tags | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    weight: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _tags_fit_kind(self) -> BackendRef:
        if self.kind == "MeshService" and self.tags is not None:
            raise EntityViolations([(("tags",), "not allowed for kind MeshService")])
        if self.kind == "MeshServiceSubset" and not self.tags:
            raise EntityViolations([(("tags",), "required for kind MeshServiceSubset")])
        return self


class RuleConf(MeshModel):
    filters: list[Filter] | None = None
    backend_refs: list[BackendRef] | None = None


class Rule(MeshModel):
    matches: list[Match] = Field(min_length=1)
    default: RuleConf


class RouteTo(MeshModel):
    target_ref: TargetRef
    rules: list[Rule] = Field(min_length=1)


class MeshHTTPRouteSpec(PolicySpec):
    TO_KINDS = ("MeshService",)

    to: list[RouteTo] = Field(min_length=1)
