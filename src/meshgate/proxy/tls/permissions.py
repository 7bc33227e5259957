"""Mesh traffic permissions of an inbound listener, decided once per connection.

``InboundGuard`` is built once per listener from ``Listener.permissions``: rules are tried in
order and the first whose ``identities`` are all among the client's URI SANs decides
(``allow``; ``deny``; ``allow_with_shadow_deny``: allowed, and logged as a would-be denial).
No rule matches: denied.  ``permissions`` None: everything is allowed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meshgate import snapshot


_log = logging.getLogger("meshgate.proxy.mesh")

FORBIDDEN_REASON = "forbidden by mesh traffic permission"
FORBIDDEN_MESSAGE = "You cannot consume this service"  # Kong's 403 body text


@dataclass(frozen=True, slots=True)
class _Rule:
    action: str
    identities: frozenset[str]
    origin: str | None


@dataclass(frozen=True, slots=True)
class InboundGuard:
    """Who may use a mesh listener (``rules`` None: anybody)."""

    listener: str
    rules: tuple[_Rule, ...] | None

    @classmethod
    def of(cls, listener: snapshot.Listener) -> InboundGuard:
        if listener.permissions is None:
            return cls(listener.name, None)
        rules = tuple(
            _Rule(rule.action, frozenset(rule.identities), rule.origin)
            for rule in listener.permissions
        )
        return cls(listener.name, rules)

    def allows(self, peer_ids: tuple[str, ...], client: str = "") -> bool:
        """Whether a client presenting ``peer_ids`` may use the listener (``client``: for logs)."""
        rules = self.rules
        if rules is None:
            return True
        presented = frozenset(peer_ids)
        for rule in rules:
            if rule.identities <= presented:
                if rule.action == "allow":
                    return True
                if rule.action == "deny":
                    _log.info(
                        "mesh listener %s: denied %s %s (rule of %s)",
                        self.listener, client, list(peer_ids), rule.origin,
                    )  # fmt: skip
                    return False
                _log.warning(
                    "mesh listener %s: shadow deny of %s %s (rule of %s): allowed",
                    self.listener, client, list(peer_ids), rule.origin,
                )  # fmt: skip
                return True
        _log.info(
            "mesh listener %s: denied %s %s (no rule matched)",
            self.listener,
            client,
            list(peer_ids),
        )
        return False
