"""Topic ACLs per consumer: who may produce to / consume from which topic.

Config shape (on every ``kafka-*`` plugin)::

    acl:
      produce: {orders: [alice, billing-team], "*": [admin]}
      consume: {orders: [c0ffee-id, readers]}

A list entry matches the authenticated consumer's username, id or custom_id, or one of its
groups (the ``acls`` credentials the ``acl`` plugin uses, plus ``ctx.shared
["authenticated_groups"]``). ``"*"`` as a topic applies to every topic. When the map for an
action is set, a topic with no matching entry is refused (403); no map = no restriction. With a
map set and nobody authenticated → 401.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from meshgate.events.http_api.problems import HttpProblem

if TYPE_CHECKING:
    from meshgate.snapshot import Consumer

Action = Literal["produce", "consume"]


class TopicAclConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    produce: dict[str, list[str]] | None = Field(
        default=None, description="topic (or *) -> consumer usernames/ids/groups allowed to produce"
    )
    consume: dict[str, list[str]] | None = Field(
        default=None, description="topic (or *) -> consumer usernames/ids/groups allowed to consume"
    )


class TopicAcl:
    """Compiled ``TopicAclConfig``; ``groups_of`` maps consumer id → its ACL groups."""

    def __init__(
        self, config: TopicAclConfig | None, groups_of: Mapping[str, Sequence[str]]
    ) -> None:
        self._rules: dict[str, dict[str, frozenset[str]] | None] = {
            "produce": _compile(config.produce if config else None),
            "consume": _compile(config.consume if config else None),
        }
        self._groups_of = groups_of

    def restricts(self, action: Action) -> bool:
        return self._rules[action] is not None

    def guards(self, action: Action) -> bool:
        """Whether ``action`` is restricted at all (else ``check`` always passes)."""
        return self._rules[action] is not None

    def check(
        self,
        action: Action,
        topic: str,
        consumer: Consumer | None,
        extra_groups: Iterable[str] = (),
    ) -> None:
        """Raise ``HttpProblem`` 401/403 unless ``consumer`` may ``action`` ``topic``."""
        rules = self._rules[action]
        if rules is None:
            return
        if consumer is None:
            raise HttpProblem(401, "Unauthorized", "event-acl-unauthenticated")
        allowed = rules.get(topic, frozenset()) | rules.get("*", frozenset())
        names = {consumer.id, *(n for n in (consumer.username, consumer.custom_id) if n)}
        names.update(self._groups_of.get(consumer.id, ()))
        names.update(extra_groups)
        if allowed.isdisjoint(names):
            raise HttpProblem(403, f"You cannot {action} topic {topic!r}", "event-acl-denied")


def _compile(rules: Mapping[str, Sequence[str]] | None) -> dict[str, frozenset[str]] | None:
    if rules is None:
        return None
    return {topic: frozenset(names) for topic, names in rules.items()}


def acl_groups(
    credentials: Iterable[tuple[Consumer, Mapping[str, object]]],
) -> dict[str, tuple[str, ...]]:
    """consumer id → groups, from ``env.credentials("acls")``."""
    groups: dict[str, tuple[str, ...]] = {}
    for consumer, credential in credentials:
        group = credential.get("group")
        if isinstance(group, str):
            groups[consumer.id] = (*groups.get(consumer.id, ()), group)
    return groups
