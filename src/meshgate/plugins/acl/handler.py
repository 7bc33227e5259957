"""acl: let the authenticated consumer through only if its groups (``acls`` credentials) meet
the ``allow`` list or miss the ``deny`` list (Kong 3.9's behaviour and PRIORITY 950, after the
auth plugins).

Groups of a consumer and the decision for them are computed once per snapshot (lazily, per
consumer).  Groups set by another plugin in ``ctx.shared["authenticated_groups"]`` are used
when there is no consumer, for the anonymous consumer, or always with
``always_use_authenticated_groups``.  Refusals: 403 "You cannot consume this service"; 401
"Unauthorized" when nobody is authenticated.  Allowed requests carry the groups upstream in
``X-Consumer-Groups`` (``X-Authenticated-Groups`` for authenticated groups) unless
``hide_groups_header``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.proxy.filters.messages import default_message
from meshgate.snapshot import PluginInstance

from .schema import Config

DENIED = "You cannot consume this service"
_UNSENDABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # group names that cannot be a header
# A decision: None = blocked, else the header value to send ("" when hidden)
Decision = str | None


class Handler(PluginHandler):
    name = "acl"
    PRIORITY = 950
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.conf = config
        self.deny_mode = bool(config.deny)
        self.groups = frozenset(config.deny or config.allow or ())
        self.hide = config.hide_groups_header
        self.groups_of: dict[str, tuple[str, ...]] = {}
        for consumer, credential in env.credentials("acls"):
            group = credential.get("group")
            if isinstance(group, str):
                self.groups_of[consumer.id] = (*self.groups_of.get(consumer.id, ()), group)
        self.decisions: dict[str, Decision] = {}

    def _decide(self, groups: Sequence[str]) -> Decision:
        in_group = not self.groups.isdisjoint(groups)
        if in_group == self.deny_mode:
            return None
        if self.hide:
            return ""
        value = ", ".join(groups)
        return "" if _UNSENDABLE.search(value) else value

    def access(self, ctx: RequestContext) -> None:
        consumer = ctx.consumer
        credential = ctx.credential
        authenticated = ctx.shared.get("authenticated_groups")
        if not isinstance(authenticated, list | tuple) or not all(
            isinstance(g, str) for g in authenticated
        ):
            authenticated = None
        if consumer is None:
            if authenticated is None:
                if credential is not None:
                    ctx.exit(403, DENIED)
                ctx.exit(401, default_message(401))
            self._apply(ctx, self._decide(authenticated), "X-Authenticated-Groups")
            return None
        if authenticated is not None and (
            credential is None or self.conf.always_use_authenticated_groups
        ):
            self._apply(ctx, self._decide(authenticated), "X-Authenticated-Groups")
            return None
        decision = self.decisions.get(consumer.id, "\0")
        if decision == "\0":
            groups = self.groups_of.get(consumer.id)
            if groups is None and not self.deny_mode:
                if credential is not None:
                    ctx.exit(403, DENIED)
                ctx.exit(401, default_message(401))
            decision = self.decisions[consumer.id] = self._decide(groups or ())
        self._apply(ctx, decision, "X-Consumer-Groups")
        return None

    def _apply(self, ctx: RequestContext, decision: Decision, header: str) -> None:
        if decision is None:
            ctx.exit(403, DENIED)
        if decision and not self.hide:
            ctx.set_header(header, decision)
