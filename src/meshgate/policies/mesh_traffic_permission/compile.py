"""MeshTrafficPermission → ``Listener.permissions`` of an inbound.

The merged action for a client is the action of the *last* ``from`` item (in merge order)
whose ``targetRef`` selects it — merging ``{action}`` objects keeps the last one.  So the
rules are those items in reverse order, each asking for the identities its selector implies,
and the engine's "first matching rule decides" gives exactly the merged result.  Rules after
one that matches every client can never decide and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshgate import snapshot
from meshgate.resources.mesh.identity import identities_for_tags
from meshgate.resources.mesh.merge import from_contributions
from meshgate.resources.mesh.policy import Policy

_ACTIONS: dict[str, snapshot.PermissionAction] = {
    "Allow": "allow",
    "Deny": "deny",
    "AllowWithShadowDeny": "allow_with_shadow_deny",
}


def permission_rules(ordered: Sequence[Policy], mesh: str) -> tuple[snapshot.PermissionRule, ...]:
    """The rules of one inbound from its applicable policies (least important first)."""
    rules: list[snapshot.PermissionRule] = []
    for contribution in reversed(from_contributions(ordered)):
        identities = identities_for_tags(mesh, contribution.item.target_ref.required_tags())
        origin = contribution.origin
        rules.append(
            snapshot.PermissionRule(
                action=_ACTIONS[contribution.item.default.action],
                identities=identities,
                origin=f"{origin.policy} {origin.level}",
            )
        )
        if not identities:
            break
    return tuple(rules)
