"""Kong Upstream (hashing rules, healthchecks defaults) and Target (parsing) models."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from meshgate import snapshot
from meshgate.resources.kong import Healthchecks, Target, Upstream, parse_target
from meshgate.resources.violations import violations_from


def problems(model: type[BaseModel], data: dict[str, Any]) -> dict[str, str]:
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return {v.path: v.message for v in violations_from(exc, "")}
    return {}


def test_healthchecks_defaults_equal_the_snapshot_defaults() -> None:
    assert Healthchecks().model_dump() == snapshot.Healthchecks().model_dump()


def test_healthchecks_defaults_are_kongs() -> None:
    checks = Healthchecks()
    assert checks.active.healthy.interval == 0
    assert checks.active.healthy.http_statuses == (200, 302)
    assert checks.active.unhealthy.http_statuses == (429, 404, 500, 501, 502, 503, 504, 505)
    assert (checks.active.timeout, checks.active.concurrency, checks.active.http_path) == (
        1,
        10,
        "/",
    )
    assert checks.passive.unhealthy.http_statuses == (429, 500, 503)
    assert 226 in checks.passive.healthy.http_statuses
    assert checks.threshold == 0


def test_upstream_defaults() -> None:
    upstream = Upstream(name="backend.internal")
    assert (upstream.algorithm, upstream.hash_on, upstream.slots) == ("round-robin", "none", 10000)
    assert upstream.hash_on_cookie_path == "/"


def test_hash_on_implies_consistent_hashing() -> None:
    upstream = Upstream.model_validate({"name": "u", "hash_on": "ip"})
    assert upstream.algorithm == "consistent-hashing"


@pytest.mark.parametrize("algorithm", ["least-connections", "latency"])
def test_non_hashing_algorithms_drop_hash_on(algorithm: str) -> None:
    upstream = Upstream.model_validate({"name": "u", "algorithm": algorithm, "hash_on": "ip"})
    assert (upstream.algorithm, upstream.hash_on) == (algorithm, "none")


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"name": "10.0.0.1"}, "name", "no ip addresses"),
        ({"name": "u:80"}, "name", "no port"),
        ({"name": "bad name"}, "name", "valid hostname"),
        ({"name": "u", "slots": 5}, "slots", "greater than or equal"),
        ({"name": "u", "slots": 70000}, "slots", "less than or equal"),
        ({"name": "u", "hash_on": "header"}, "hash_on_header", "required field missing"),
        ({"name": "u", "hash_on": "cookie"}, "hash_on_cookie", "required"),
        ({"name": "u", "hash_on": "query_arg"}, "hash_on_query_arg", "required"),
        ({"name": "u", "hash_on": "uri_capture"}, "hash_on_uri_capture", "required"),
        (
            {"name": "u", "hash_on": "ip", "hash_fallback": "header"},
            "hash_fallback_header",
            "required",
        ),
        ({"name": "u", "hash_fallback": "ip"}, "hash_fallback", "must be 'none'"),
        (
            {"name": "u", "hash_on": "cookie", "hash_on_cookie": "c", "hash_fallback": "ip"},
            "hash_fallback",
            "must be 'none'",
        ),
        ({"name": "u", "hash_on": "ip", "hash_fallback": "ip"}, "hash_fallback", "different"),
        (
            {
                "name": "u",
                "hash_on": "header",
                "hash_on_header": "X-A",
                "hash_fallback": "header",
                "hash_fallback_header": "x-a",
            },
            "hash_fallback_header",
            "different",
        ),
        (
            {"name": "u", "healthchecks": {"active": {"timeout": -1}}},
            "healthchecks.active.timeout",
            "greater",
        ),
        (
            {"name": "u", "healthchecks": {"active": {"concurrency": 0}}},
            "healthchecks.active.concurrency",
            "greater",
        ),
        (
            {"name": "u", "healthchecks": {"active": {"type": "udp"}}},
            "healthchecks.active.type",
            "Input should be",
        ),
        (
            {"name": "u", "healthchecks": {"active": {"healthy": {"http_statuses": [200, 1000]}}}},
            "healthchecks.active.healthy.http_statuses[1]",
            "less than or equal",
        ),
        (
            {"name": "u", "healthchecks": {"passive": {"unhealthy": {"tcp_failures": 300}}}},
            "healthchecks.passive.unhealthy.tcp_failures",
            "less than or equal",
        ),
        ({"name": "u", "healthchecks": {"threshold": 101}}, "healthchecks.threshold", "less than"),
        (
            {"name": "u", "healthchecks": {"active": {"http_path": "x"}}},
            "healthchecks.active.http_path",
            "start",
        ),
        (
            {"name": "u", "healthchecks": {"active": {"bogus": 1}}},
            "healthchecks.active.bogus",
            "unknown field",
        ),
    ],
)
def test_upstream_rejections(data: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(Upstream, data)
    assert path in found, found
    assert fragment in found[path], found[path]


def test_upstream_valid_hashing_combinations() -> None:
    data = {
        "name": "u",
        "hash_on": "header",
        "hash_on_header": "x-user",
        "hash_fallback": "header",
        "hash_fallback_header": "x-session",
    }
    assert problems(Upstream, data) == {}
    assert problems(Upstream, {"name": "u", "hash_on": "consumer", "hash_fallback": "ip"}) == {}


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("10.0.0.1", "10.0.0.1:8000"),
        ("10.0.0.1:80", "10.0.0.1:80"),
        ("backend.local", "backend.local:8000"),
        ("backend.local:9000", "backend.local:9000"),
        ("::1", "[::1]:8000"),
        ("[::1]", "[::1]:8000"),
        ("[::1]:80", "[::1]:80"),
        ("[2001:db8:0:0:0:0:0:1]:443", "[2001:db8::1]:443"),
    ],
)
def test_target_normalisation(text: str, normalised: str) -> None:
    assert Target(target=text).target == normalised


@pytest.mark.parametrize(
    "text",
    ["", "a b", "host:", "host:0", "host:70000", "[::1", "[::1]x", "[nothost]:80", "1.2.3.4:x"],
)
def test_target_rejections(text: str) -> None:
    found = problems(Target, {"target": text})
    assert "target" in found
    assert "Invalid target" in found["target"]


def test_target_weight_range_and_default() -> None:
    assert Target(target="a").weight == 100
    assert "weight" in problems(Target, {"target": "a", "weight": 65536})
    assert "weight" in problems(Target, {"target": "a", "weight": -1})
    assert problems(Target, {"target": "a", "weight": 0}) == {}


_labels = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
_hostnames = st.lists(_labels, min_size=1, max_size=4).map(".".join)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
_ports = st.integers(min_value=1, max_value=65535)


@given(host=st.one_of(_hostnames, _ipv4), port=_ports)
def test_target_parse_round_trip_v4_and_names(host: str, port: int) -> None:
    assert parse_target(f"{host}:{port}") == (host, port)
    assert parse_target(host) == (host, 8000)


@given(host=_ipv6, port=_ports)
def test_target_parse_round_trip_v6(host: str, port: int) -> None:
    parsed_host, parsed_port = parse_target(f"[{host}]:{port}")
    assert ipaddress.ip_address(parsed_host) == ipaddress.ip_address(host)
    assert parsed_port == port
    target = Target(target=f"[{host}]:{port}")
    assert Target(target=target.target).target == target.target  # normalising is idempotent
    assert (target.port, ipaddress.ip_address(target.host)) == (port, ipaddress.ip_address(host))
