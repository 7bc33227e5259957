"""bot-detection: in access, look at the User-Agent: matching ``allow`` → proxied; else matching
``deny`` or the built-in bad-bot list (``rules.BAD_BOTS``) → 403 "Forbidden" (Kong's order and
PRIORITY 2500).  No User-Agent → proxied; several User-Agent headers → 400 "Only one User-Agent
header allowed".

The built-in list is one compiled alternation; verdicts are cached per User-Agent string
(bounded, per handler), so a returning client costs one dict lookup.
"""

from __future__ import annotations

import re

from meshgate.proxy.filters.api import CompileEnv, PluginHandler, RequestContext
from meshgate.snapshot import PluginInstance

from .rules import BAD_BOTS
from .schema import Config

_BOTS = re.compile("|".join(f"(?:{p})" for p in BAD_BOTS), re.IGNORECASE)
_CACHE_MAX = 10000


class Handler(PluginHandler):
    name = "bot-detection"
    PRIORITY = 2500
    VERSION = "3.9.1"

    def __init__(self, config: Config, instance: PluginInstance, env: CompileEnv) -> None:
        super().__init__(config, instance, env)
        self.allow = [re.compile(p) for p in config.allow]
        self.deny = [re.compile(p) for p in config.deny]
        self._verdicts: dict[str, bool] = {}

    def refused(self, user_agent: str) -> bool:
        """True when this User-Agent is denied or a known bot (and not explicitly allowed)."""
        agent = user_agent.strip()
        if any(rule.search(agent) for rule in self.allow):
            return False
        if any(rule.search(agent) for rule in self.deny):
            return True
        return _BOTS.search(agent) is not None

    def access(self, ctx: RequestContext) -> None:
        agents = ctx.headers().get("user-agent")
        if not agents:
            return
        if len(agents) > 1:
            ctx.exit(400, "Only one User-Agent header allowed")
        agent = agents[0]
        refused = self._verdicts.get(agent)
        if refused is None:
            if len(self._verdicts) >= _CACHE_MAX:
                self._verdicts.clear()
            refused = self._verdicts[agent] = self.refused(agent)
        if refused:
            ctx.exit(403, "Forbidden")
