"""ip-restriction: config rules, allow/deny over IPv4/IPv6 addresses and CIDRs, Kong's answers."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases


def _status(config: dict[str, Any], ip: str) -> int:
    handler = make_handler("ip-restriction", config)
    return run_phases(handler, FakeContext("GET", "/", client_ip=ip)).status


def _errors(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("ip-restriction", config)
    fields: dict[str, str] = info.value.to_fields()
    return fields


def test_config_validation() -> None:
    assert "at least one of these fields" in _errors({})["config"]
    assert _errors({"allow": ["10.0.0.1", "300.1.1.1"]})["config.allow"] == (
        "invalid ip or cidr range: '300.1.1.1'"
    )
    assert "config.deny" in _errors({"deny": ["10.0.0.0/33"]})
    assert "config.status" in _errors({"deny": ["10.0.0.1"], "status": 42})
    conf = validate_plugin_config("ip-restriction", {"allow": ["10.0.0.0/8", "::1"]})
    assert conf == {"allow": ["10.0.0.0/8", "::1"], "deny": None, "status": None, "message": None}
    assert validate_plugin_config("ip-restriction", {"deny": ["10.1.2.3/8"]})["deny"] == [
        "10.1.2.3/8"
    ]  # host bits may be set, as Kong


def test_deny_list_with_kongs_default_answer() -> None:
    handler = make_handler("ip-restriction", {"deny": ["10.0.0.0/8", "192.168.1.7"]})
    refused = run_phases(handler, FakeContext("GET", "/", client_ip="10.20.30.40"))
    assert refused.status == 403
    assert json.loads(refused.body) == {"message": "IP address not allowed: 10.20.30.40"}
    assert _status({"deny": ["10.0.0.0/8", "192.168.1.7"]}, "192.168.1.7") == 403
    assert _status({"deny": ["10.0.0.0/8", "192.168.1.7"]}, "192.168.1.8") == 200
    assert _status({"deny": ["10.0.0.0/8"]}, "11.0.0.1") == 200


def test_allow_list_refuses_everyone_else() -> None:
    config = {"allow": ["172.16.0.0/12", "2001:db8::/32"]}
    assert _status(config, "172.31.255.255") == 200
    assert _status(config, "172.32.0.0") == 403
    assert _status(config, "2001:db8:1::5") == 200
    assert _status(config, "2001:db9::5") == 403


def test_deny_wins_over_allow() -> None:
    config = {"allow": ["10.0.0.0/8"], "deny": ["10.1.0.0/16"]}
    assert _status(config, "10.2.3.4") == 200
    assert _status(config, "10.1.3.4") == 403


def test_ipv4_mapped_ipv6_clients_match_ipv4_rules() -> None:
    assert _status({"deny": ["10.0.0.0/8"]}, "::ffff:10.1.2.3") == 403
    assert _status({"allow": ["::ffff:10.0.0.0/104"]}, "10.9.9.9") == 200


def test_custom_status_and_message() -> None:
    handler = make_handler(
        "ip-restriction", {"deny": ["0.0.0.0/0"], "status": 401, "message": "go away"}
    )
    result = run_phases(handler, FakeContext("GET", "/", client_ip="8.8.8.8"))
    assert result.status == 401
    assert json.loads(result.body) == {"message": "go away"}


def test_unparsable_client_address_is_refused() -> None:
    assert _status({"deny": ["10.0.0.1"]}, "unix:/run/sock") == 403


def test_lookup_is_fast_with_many_networks() -> None:
    networks = [f"10.{i // 256}.{i % 256}.0/24" for i in range(5000)] + ["2001:db8::/48"]
    handler = make_handler("ip-restriction", {"allow": networks})
    assert run_phases(handler, FakeContext("GET", "/", client_ip="10.19.135.77")).status == 200
    assert run_phases(handler, FakeContext("GET", "/", client_ip="10.200.0.1")).status == 403
    started = time.perf_counter()
    for i in range(2000):
        handler.verdict(f"10.{i % 20}.{i % 250}.1")  # type: ignore[attr-defined]
    assert time.perf_counter() - started < 1.0  # ~µs each: no scan over 5000 networks
