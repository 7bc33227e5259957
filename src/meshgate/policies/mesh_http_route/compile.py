"""MeshHTTPRoute → the routes of one outbound listener.

Rules of all applicable policies for a destination are merged as a map keyed by their
``matches``: rules with identical matches fold their ``default``s (JSON merge patch, lists
replaced), later policies winning.  A catch-all rule (``PathPrefix /`` to the destination
itself) is always present unless a policy gives one.

Each match becomes one snapshot route with an explicit ``priority`` following Gateway API
precedence: Exact path, then RegularExpression (implementation-specific in Gateway API; put
before prefixes so a catch-all ``/`` cannot shadow it), then the longest PathPrefix; then a
route with a method before one without; then more header matches first; then rule order.
Routes keep the client's path and Host (``strip_path`` off, ``preserve_host`` on).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from meshgate import snapshot
from meshgate.policies.mesh_http_route.api import (
    BackendRef,
    HeaderMatch,
    HeaderModifier,
    Match,
    PathMatch,
    RouteTo,
    RuleConf,
)
from meshgate.resources.mesh.base import SERVICE_TAG
from meshgate.resources.mesh.merge import Origin, json_merge_patch
from meshgate.resources.mesh.policy import Policy

_CATCH_ALL = Match(path=PathMatch(type="PathPrefix", value="/"))
_PATH_CLASS = {"Exact": 0, "RegularExpression": 1, "PathPrefix": 2}


@dataclass(frozen=True, slots=True)
class MergedRule:
    """One rule after merging: its matches, folded configuration and where it came from."""

    matches: tuple[Match, ...]
    conf: RuleConf
    origins: tuple[Origin, ...]

    def view(self) -> dict[str, object]:
        return {
            "matches": [_match_json(m) for m in self.matches],
            "default": self.conf.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "origins": [o.as_dict() for o in self.origins],
        }


def merged_rules(ordered: Sequence[Policy], destination: str) -> list[MergedRule]:
    """The merged rules for traffic to ``destination`` (policies least important first)."""
    keyed: dict[str, tuple[tuple[Match, ...], dict[str, object], list[Origin]]] = {}
    for policy in ordered:
        for to_index, item in enumerate(policy.spec.to_items()):
            assert isinstance(item, RouteTo)
            if not item.target_ref.selects({SERVICE_TAG: destination}):
                continue
            for rule_index, rule in enumerate(item.rules):
                key = _matches_key(rule.matches)
                matches, conf, origins = keyed.get(key, (tuple(rule.matches), {}, []))
                patch = rule.default.model_dump(by_alias=True, exclude_unset=True, mode="json")
                conf = json_merge_patch(conf, patch)
                origin = Origin(
                    policy.name,
                    f"to[{to_index}].rules[{rule_index}]",
                    item.target_ref.label(),
                )
                keyed[key] = (matches, conf, [*origins, origin])
    rules = [
        MergedRule(matches, RuleConf.model_validate(conf), tuple(origins))
        for matches, conf, origins in keyed.values()
    ]
    if _matches_key([_CATCH_ALL]) not in keyed:
        rules.append(MergedRule((_CATCH_ALL,), RuleConf(), ()))
    return rules


def backend_refs(rules: Sequence[MergedRule]) -> list[BackendRef]:
    """Every backend the rules send traffic to (so the compiler can make their clusters)."""
    return [ref for rule in rules for ref in rule.conf.backend_refs or ()]


def build_routes(
    rules: Sequence[MergedRule],
    *,
    listener: str,
    destination_service: str,
    service_of: Callable[[BackendRef], str],
) -> list[snapshot.Route]:
    """One ranked route per match of ``rules``, bound to ``listener``.

    ``destination_service`` is the ``Service.id`` of the destination itself (rules without
    ``backendRefs`` go there); ``service_of`` gives the ``Service.id`` of a backend.
    """
    entries = [
        (rule_index, match_index, rule, match)
        for rule_index, rule in enumerate(rules)
        for match_index, match in enumerate(rule.matches)
    ]
    entries.sort(key=lambda e: (*_precedence(e[3]), e[0], e[1]))
    routes: list[snapshot.Route] = []
    for position, (rule_index, match_index, rule, match) in enumerate(entries):
        service, backends = _destination(rule.conf, destination_service, service_of)
        request_edits, response_edits = _header_edits(rule.conf)
        routes.append(
            snapshot.Route(
                id=f"{listener}:rule{rule_index}.{match_index}",
                name=rule.origins[-1].policy if rule.origins else None,
                protocols=("http", "https"),
                methods=(match.method,) if match.method else (),
                paths=_paths(match.path),
                headers={h.name.lower(): (_header_value(h),) for h in match.headers},
                strip_path=False,
                preserve_host=True,
                service=service,
                listeners=(listener,),
                priority=len(entries) - position,
                backends=backends,
                request_headers=request_edits,
                response_headers=response_edits,
            )
        )
    return routes


# --------------------------------------------------------------------------- helpers


def _match_json(match: Match) -> object:
    return match.model_dump(by_alias=True, exclude_defaults=True, mode="json")


def _matches_key(matches: Sequence[Match]) -> str:
    return json.dumps([_match_json(m) for m in matches], sort_keys=True)


def _precedence(match: Match) -> tuple[int, int, int, int]:
    path = match.path or _CATCH_ALL.path
    assert path is not None
    length = 0 if path.type == "RegularExpression" else len(path.value.rstrip("/") or "/")
    return (_PATH_CLASS[path.type], -length, 0 if match.method else 1, -len(match.headers))


def _paths(path: PathMatch | None) -> tuple[str, ...]:
    if path is None:
        return ("/",)
    if path.type == "RegularExpression":
        return (f"~(?:{path.value})$",)
    if path.type == "Exact":
        return (f"~{re.escape(path.value)}$",)
    prefix = path.value.rstrip("/")
    if not prefix:
        return ("/",)
    # Gateway API prefixes match whole path segments: /v2 matches /v2 and /v2/x, not /v2x
    return (f"~{re.escape(prefix)}$", f"{prefix}/")


def _header_value(header: HeaderMatch) -> str:
    if header.type == "Present":
        return "~*^"
    assert header.value is not None
    if header.type == "RegularExpression":
        return f"~*^(?:{header.value})$"
    if header.type == "Prefix":
        return f"~*^{re.escape(header.value)}"
    return header.value


def _destination(
    conf: RuleConf, destination_service: str, service_of: Callable[[BackendRef], str]
) -> tuple[str, tuple[snapshot.WeightedBackend, ...]]:
    refs = conf.backend_refs or []
    if not refs:
        return destination_service, ()
    if len(refs) == 1:
        return service_of(refs[0]), ()
    backends = tuple(snapshot.WeightedBackend(service=service_of(r), weight=r.weight) for r in refs)
    first_used = next((b.service for b in backends if b.weight > 0), backends[0].service)
    return first_used, backends


def _header_edits(
    conf: RuleConf,
) -> tuple[snapshot.HeaderModifier | None, snapshot.HeaderModifier | None]:
    request = [f.request_header_modifier for f in conf.filters or () if f.request_header_modifier]
    response = [
        f.response_header_modifier for f in conf.filters or () if f.response_header_modifier
    ]
    return _modifier(request), _modifier(response)


def _modifier(modifiers: Sequence[HeaderModifier]) -> snapshot.HeaderModifier | None:
    if not modifiers:
        return None
    return snapshot.HeaderModifier(
        set=tuple((h.name, h.value) for m in modifiers for h in m.set),
        add=tuple((h.name, h.value) for m in modifiers for h in m.add),
        remove=tuple(name for m in modifiers for name in m.remove),
    )
