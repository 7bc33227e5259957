"""response-ratelimiting: config validation, units spent through the upstream's x-kong-limit
header, Kong's headers and 429s, block_on_first_violation, windows (FakeContext), and the
counter-file reads/adds it uses."""

from __future__ import annotations

import calendar
from pathlib import Path
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.plugins.rate_limiting.shared_counters import (
    CounterStore,
    group_hash,
    period_fingerprint,
)
from meshgate.plugins.response_ratelimiting import handler as rrl_handler
from meshgate.plugins.response_ratelimiting.handler import parse_increments
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, PhaseResult, make_handler, run_phases
from meshgate.snapshot import Consumer

T0 = calendar.timegm((2026, 3, 14, 15, 9, 26))
ALICE = Consumer(id="c-alice", username="alice")
BOB = Consumer(id="c-bob", username="bob")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [float(T0)]
    monkeypatch.setattr(rrl_handler, "wall_clock", lambda: now[0])
    return now


def _errors(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("response-ratelimiting", config)
    fields: dict[str, str] = info.value.to_fields()
    return fields


def _send(handler: Any, spend: str | None = None, **kwargs: Any) -> tuple[PhaseResult, Any]:
    ctx = FakeContext("GET", "/videos", client_ip=kwargs.pop("ip", "10.0.0.1"), **kwargs)
    headers = {"Content-Type": "text/plain"}
    if spend is not None:
        headers["X-Kong-Limit"] = spend
    return run_phases(handler, ctx, upstream=(200, headers, b"ok")), ctx


def _rl(result: PhaseResult) -> dict[str, str]:
    return {k: v[0] for k, v in result.headers.items() if k.startswith("x-ratelimit")}


# --------------------------------------------------------------------------- config


def test_defaults_are_kongs() -> None:
    conf = validate_plugin_config("response-ratelimiting", {"limits": {"videos": {"minute": 5}}})
    assert conf["header_name"] == "x-kong-limit"
    assert conf["limit_by"] == "consumer"
    assert conf["policy"] == "local"
    assert conf["fault_tolerant"] is True
    assert conf["block_on_first_violation"] is False
    assert conf["hide_client_headers"] is False
    assert conf["limits"]["videos"]["minute"] == 5
    assert conf["limits"]["videos"]["second"] is None


def test_config_errors() -> None:
    assert "config.limits" in _errors({})
    assert "config.limits" in _errors({"limits": {}})
    assert "at least one of these fields" in str(_errors({"limits": {"videos": {}}}))
    order = _errors({"limits": {"videos": {"second": 10, "minute": 5}}})
    assert "cannot be lower than the limit for second" in str(order)
    assert "cluster" in str(_errors({"limits": {"v": {"minute": 1}}, "policy": "cluster"}))
    assert "redis.host" in str(_errors({"limits": {"v": {"minute": 1}}, "policy": "redis"}))
    assert "header name" in str(_errors({"limits": {"a b": {"minute": 1}}}))
    assert "config.limits" in str(_errors({"limits": {"v": {"minute": 0}}}))


def test_deprecated_flat_redis_fields_are_moved() -> None:
    conf = validate_plugin_config(
        "response-ratelimiting",
        {"limits": {"v": {"minute": 1}}, "policy": "redis", "redis_host": "127.0.0.1"},
    )
    assert conf["redis"]["host"] == "127.0.0.1"


def test_increments_are_parsed_like_kong() -> None:
    known = {"videos", "images"}
    assert parse_increments(["videos=2, images = 1"], known) == {"videos": 2, "images": 1}
    assert parse_increments(["videos=2", "images=3"], known) == {"videos": 2, "images": 3}
    assert parse_increments(["other=5, videos"], known) == {}
    assert parse_increments(["videos=x=1, images=1.0, videos=2.5"], known) == {"images": 1}


# --------------------------------------------------------------------------- counting


def test_units_are_spent_by_the_upstream_and_refused_once_used_up(clock: list[float]) -> None:
    h = make_handler("response-ratelimiting", {"limits": {"videos": {"minute": 3, "hour": 10}}})
    first, ctx = _send(h, "videos=2")
    assert first.status == 200
    assert ctx.upstream_headers()["x-ratelimit-remaining-videos"] == ["3"]
    assert _rl(first) == {
        "x-ratelimit-limit-videos-minute": "3",
        "x-ratelimit-remaining-videos-minute": "1",
        "x-ratelimit-limit-videos-hour": "10",
        "x-ratelimit-remaining-videos-hour": "8",
    }
    assert "x-kong-limit" not in first.headers  # the upstream's report is not passed on
    second, ctx = _send(h, "videos=2")  # 1 left: allowed, overspends to 4
    assert second.status == 200
    assert ctx.upstream_headers()["x-ratelimit-remaining-videos"] == ["1"]
    assert _rl(second)["x-ratelimit-remaining-videos-minute"] == "0"
    third, _ = _send(h, "videos=1")  # nothing left and it spends: 429, no body
    assert third.status == 429
    assert third.body == b""
    assert third.exit is not None
    assert third.exit.body is None
    free, ctx = _send(h)  # spends nothing: goes through
    assert free.status == 200
    assert ctx.upstream_headers()["x-ratelimit-remaining-videos"] == ["-1"]
    assert _rl(free)["x-ratelimit-remaining-videos-hour"] == "6"  # the 429 was not counted


def test_a_new_window_starts_from_zero(clock: list[float]) -> None:
    h = make_handler("response-ratelimiting", {"limits": {"videos": {"minute": 2}}})
    _send(h, "videos=2")
    assert _send(h, "videos=1")[0].status == 429
    clock[0] += 60
    result, _ = _send(h, "videos=1")
    assert result.status == 200
    assert _rl(result)["x-ratelimit-remaining-videos-minute"] == "1"


def test_each_limit_counts_only_its_own_units(clock: list[float]) -> None:
    limits = {"videos": {"minute": 2}, "images": {"minute": 100}}
    h = make_handler("response-ratelimiting", {"limits": limits})
    _send(h, "videos=2, images=5")
    result, ctx = _send(h, "images=5")
    assert result.status == 200
    assert ctx.upstream_headers()["x-ratelimit-remaining-videos"] == ["0"]
    assert _rl(result)["x-ratelimit-remaining-images-minute"] == "90"
    assert _send(h, "videos=1")[0].status == 429


def test_block_on_first_violation_refuses_before_the_upstream(clock: list[float]) -> None:
    config = {"limits": {"videos": {"minute": 2}}, "block_on_first_violation": True}
    h = make_handler("response-ratelimiting", config)
    assert _send(h, "videos=2")[0].status == 200
    refused, _ = _send(h)
    assert refused.status == 429
    assert refused.exit is not None
    assert refused.exit.body == b'{"message":"API rate limit exceeded for \'videos\'"}'


def test_hidden_client_headers_still_inform_the_upstream(clock: list[float]) -> None:
    config = {"limits": {"videos": {"minute": 5}}, "hide_client_headers": True}
    h = make_handler("response-ratelimiting", config)
    result, ctx = _send(h, "videos=1")
    assert _rl(result) == {}
    assert "x-kong-limit" not in result.headers
    assert ctx.upstream_headers()["x-ratelimit-remaining-videos"] == ["5"]
    assert _send(h, "videos=1")[1].upstream_headers()["x-ratelimit-remaining-videos"] == ["4"]


def test_custom_header_name(clock: list[float]) -> None:
    config = {"limits": {"videos": {"minute": 5}}, "header_name": "X-Units"}
    h = make_handler("response-ratelimiting", config)
    ctx = FakeContext("GET", "/videos")
    result = run_phases(h, ctx, upstream=(200, {"X-Units": "videos=3"}, b"ok"))
    assert "x-units" not in result.headers
    assert _rl(result)["x-ratelimit-remaining-videos-minute"] == "2"


def test_limit_by_consumer_with_ip_fallback(clock: list[float]) -> None:
    h = make_handler("response-ratelimiting", {"limits": {"videos": {"minute": 2}}})
    _send(h, "videos=2", consumer=ALICE)
    assert _send(h, "videos=1", consumer=ALICE)[0].status == 429
    assert _send(h, "videos=1", consumer=BOB)[0].status == 200
    assert _send(h, "videos=1", ip="10.0.0.9")[0].status == 200  # anonymous: by IP
    credential = {"id": "cred-1"}
    by_credential = make_handler(
        "response-ratelimiting", {"limits": {"v": {"minute": 1}}, "limit_by": "credential"}
    )
    _send(by_credential, "v=1", consumer=ALICE, credential=credential)
    assert _send(by_credential, "v=1", consumer=BOB, credential=credential)[0].status == 429


# --------------------------------------------------------------------------- counter file


def test_counter_file_reads_and_adds(tmp_path: Path) -> None:
    store = CounterStore(tmp_path / "counters", slots=4096)
    try:
        group = group_hash("scope|id|videos")
        fingerprints = [period_fingerprint(group, 1), period_fingerprint(group, 2)]
        stripe, homes = store.placement(group, fingerprints)
        windows, expires = [T0 - 6, T0 - 549], [T0 + 54, T0 + 3051]
        assert store.counts(stripe, fingerprints, homes, windows, T0) == [0, 0]
        store.add(stripe, fingerprints, homes, windows, expires, 3, T0)
        store.add(stripe, fingerprints, homes, windows, expires, 2, T0)
        assert store.counts(stripe, fingerprints, homes, windows, T0) == [5, 5]
        later = [windows[0] + 60, windows[1]]  # the next minute; the same hour
        assert store.counts(stripe, fingerprints, homes, later, T0 + 60) == [0, 5]
        store.add(stripe, fingerprints, homes, later, expires, 1, T0 + 60)
        assert store.counts(stripe, fingerprints, homes, later, T0 + 60) == [1, 6]
    finally:
        store.close()
