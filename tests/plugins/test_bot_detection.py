"""bot-detection: config, allow/deny regexes, the built-in bad-bot list, Kong's answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, PhaseResult, make_handler, run_phases


def _send(config: dict[str, Any], *agents: str) -> PhaseResult:
    handler = make_handler("bot-detection", config)
    headers = [("User-Agent", agent) for agent in agents]
    return run_phases(handler, FakeContext("GET", "/", headers=headers))


def test_config_validation() -> None:
    assert validate_plugin_config("bot-detection", {}) == {"allow": [], "deny": []}
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("bot-detection", {"deny": ["ok", "(unclosed"]})
    assert info.value.to_fields()["config.deny"].startswith("'(unclosed' is not a valid regex")


def test_ordinary_browsers_and_clients_pass() -> None:
    for agent in (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
        "curl/8.5.0",
        "python-requests/2.32",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ):
        assert _send({}, agent).status == 200, agent
    assert _send({}).status == 200  # no User-Agent at all


@pytest.mark.parametrize(
    "agent",
    ["sqlmap/1.8#stable (https://sqlmap.org)", "Mozilla/5.00 (Nikto/2.5.0)",
     "Mozilla/5.0 (compatible; AhrefsBot/7.0)", "Mozilla/5.0 zgrab/0.x", "HTTrack 3.0"],
)  # fmt: skip
def test_known_bad_bots_are_forbidden(agent: str) -> None:
    result = _send({}, agent)
    assert result.status == 403
    assert json.loads(result.body) == {"message": "Forbidden"}


def test_allow_wins_over_deny_and_the_bot_list() -> None:
    config = {"allow": [r"sqlmap/1\.8"], "deny": [r"(?i)chrome"]}
    assert _send(config, "sqlmap/1.8#stable").status == 200
    assert _send(config, "sqlmap/1.7").status == 403
    assert _send(config, "Mozilla/5.0 Chrome/126").status == 403
    assert _send(config, "Mozilla/5.0 Firefox/128").status == 200


def test_two_user_agents_are_a_bad_request() -> None:
    result = _send({}, "curl/8", "curl/8")
    assert result.status == 400
    assert json.loads(result.body) == {"message": "Only one User-Agent header allowed"}


def test_hostile_user_agents() -> None:
    assert _send({}, "  sqlmap  ").status == 403  # stripped, as Kong
    assert _send({"deny": ["a+!$"]}, "a" * 6000 + "?").status == 200
    assert _send({"deny": ["a+!$"]}, "a" * 6000 + "!").status == 403
    assert _send({}, "\xff\xfe\x01" * 1000).status == 200
