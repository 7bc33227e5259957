"""rate-limiting: config validation, Kong's headers and answers, identifiers, windows (FakeContext),
and the node-wide counter file shared by several processes."""

from __future__ import annotations

import calendar
import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from rate_limiting_procs import hammer, hit

from meshgate.errors import ConfigError
from meshgate.plugins.rate_limiting import handler as rl_handler
from meshgate.plugins.rate_limiting.handler import period_starts
from meshgate.plugins.rate_limiting.shared_counters import (
    CounterStore,
    default_path,
    group_hash,
    open_node_store,
    period_fingerprint,
)
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, PhaseResult, make_handler, run_phases
from meshgate.snapshot import Consumer, Service

T0 = calendar.timegm((2026, 3, 14, 15, 9, 26))  # a fixed wall clock: 2026-03-14T15:09:26Z


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [float(T0)]
    monkeypatch.setattr(rl_handler, "wall_clock", lambda: now[0])
    return now


def _errors(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("rate-limiting", config)
    fields: dict[str, str] = info.value.to_fields()
    return fields


def _send(handler: Any, ip: str = "10.0.0.1", **kwargs: Any) -> PhaseResult:
    ctx = FakeContext("GET", kwargs.pop("path", "/orders"), client_ip=ip, **kwargs)
    return run_phases(handler, ctx, upstream=(200, {"Content-Type": "text/plain"}, b"ok"))


def _rl(result: PhaseResult) -> dict[str, str]:
    return {k: v[0] for k, v in result.headers.items() if "ratelimit" in k or k == "retry-after"}


# --------------------------------------------------------------------------- config


def test_defaults_are_kongs() -> None:
    conf = validate_plugin_config("rate-limiting", {"minute": 5})
    assert conf["minute"] == 5
    assert conf["second"] is None
    assert conf["limit_by"] == "consumer"
    assert conf["policy"] == "local"
    assert conf["fault_tolerant"] is True
    assert conf["hide_client_headers"] is False
    assert conf["error_code"] == 429
    assert conf["error_message"] == "API rate limit exceeded"
    assert conf["sync_rate"] == -1
    assert conf["redis"] == {
        "host": None,
        "port": 6379,
        "timeout": 2000,
        "username": None,
        "password": None,
        "database": 0,
        "ssl": False,
        "ssl_verify": False,
        "server_name": None,
    }


def test_at_least_one_limit() -> None:
    assert "at least one of these fields must be non-empty" in _errors({})["config"]


@pytest.mark.parametrize("bad", [0, -1, "3", True, float("inf")])
def test_limits_are_positive_numbers(bad: Any) -> None:
    assert "config.minute" in _errors({"minute": bad})


def test_fractional_limit_is_accepted_and_kept() -> None:
    assert validate_plugin_config("rate-limiting", {"second": 1.5})["second"] == 1.5


def test_longer_period_cannot_have_a_lower_limit() -> None:
    message = _errors({"second": 10, "hour": 5})["config"]
    assert message == "The limit for hour(5.0) cannot be lower than the limit for second(10.0)"


def test_cluster_policy_is_refused_with_a_reason() -> None:
    message = _errors({"minute": 1, "policy": "cluster"})["config.policy"]
    assert "'cluster' policy is not supported" in message


def test_unknown_policy_and_limit_by() -> None:
    assert "config.policy" in _errors({"minute": 1, "policy": "memcached"})
    assert "config.limit_by" in _errors({"minute": 1, "limit_by": "consumer-group"})


def test_redis_policy_needs_a_host() -> None:
    assert "redis.host" in _errors({"minute": 1, "policy": "redis"})["config"]
    ok = validate_plugin_config(
        "rate-limiting", {"minute": 1, "policy": "redis", "redis": {"host": "127.0.0.1"}}
    )
    assert ok["redis"]["host"] == "127.0.0.1"


def test_redis_host_must_not_have_a_port() -> None:
    errors = _errors({"minute": 1, "policy": "redis", "redis": {"host": "redis:6379"}})
    assert errors["config.redis.host"] == "must not have a port"
    assert "config.redis.port" in _errors({"minute": 1, "redis": {"port": 70000}})


def test_flat_redis_fields_move_into_the_record() -> None:
    conf = validate_plugin_config(
        "rate-limiting",
        {"minute": 1, "policy": "redis", "redis_host": "cache.local", "redis_port": 6380,
         "redis_timeout": 300, "redis_database": 2, "redis_password": "pw"},
    )  # fmt: skip
    assert conf["redis"]["host"] == "cache.local"
    assert conf["redis"]["port"] == 6380
    assert conf["redis"]["timeout"] == 300
    assert conf["redis"]["database"] == 2
    assert conf["redis"]["password"] == "pw"
    assert "redis_host" not in conf


def test_flat_and_nested_redis_fields_must_agree() -> None:
    errors = _errors({"minute": 1, "redis_host": "a.local", "redis": {"host": "b.local"}})
    assert "redis_host" in errors["config"]


def test_limit_by_header_and_path_need_their_field() -> None:
    assert "header_name" in _errors({"minute": 1, "limit_by": "header"})["config"]
    assert "path" in _errors({"minute": 1, "limit_by": "path"})["config"]
    assert _errors({"minute": 1, "header_name": "x y"})["config.header_name"].startswith(
        "bad header name 'x y'"
    )
    assert "config.path" in _errors({"minute": 1, "limit_by": "path", "path": "orders"})
    assert "config.path" in _errors({"minute": 1, "limit_by": "path", "path": "/a//b"})


def test_sync_rate_rules() -> None:
    assert "only be used with the redis policy" in _errors({"minute": 1, "sync_rate": 1})["config"]
    redis = {"minute": 1, "policy": "redis", "redis": {"host": "h"}}
    assert "greater than 0.02" in _errors({**redis, "sync_rate": 0.01})["config"]
    assert validate_plugin_config("rate-limiting", {**redis, "sync_rate": 1})["sync_rate"] == 1


def test_error_code_range_and_unknown_fields() -> None:
    assert "config.error_code" in _errors({"minute": 1, "error_code": 0})
    assert _errors({"minute": 1, "bogus": 1})["config.bogus"] == "unknown field"


# --------------------------------------------------------------------------- behaviour


def test_headers_count_down_then_429_with_retry_after(clock: list[float]) -> None:
    h = make_handler("rate-limiting", {"second": 3, "minute": 5}, node_resources={})
    first = _send(h)
    assert first.status == 200
    assert first.body == b"ok"
    assert _rl(first) == {
        "x-ratelimit-limit-second": "3",
        "x-ratelimit-remaining-second": "2",
        "x-ratelimit-limit-minute": "5",
        "x-ratelimit-remaining-minute": "4",
        "ratelimit-limit": "3",
        "ratelimit-remaining": "2",
        "ratelimit-reset": "1",
    }
    assert _send(h).status == 200
    third = _send(h)
    assert _rl(third)["x-ratelimit-remaining-second"] == "0"
    refused = _send(h)
    assert refused.status == 429
    assert refused.body == b'{"message":"API rate limit exceeded"}'
    assert _rl(refused)["retry-after"] == "1"
    assert _rl(refused)["ratelimit-remaining"] == "0"
    # refused requests are not counted: the minute still has 2 left after the second resets
    clock[0] += 1
    again = _send(h)
    assert again.status == 200
    assert _rl(again)["x-ratelimit-remaining-minute"] == "1"
    assert _rl(again)["ratelimit-limit"] == "5"  # the minute now has fewer left than the second


def test_ratelimit_reset_is_for_the_most_constrained_period(clock: list[float]) -> None:
    h = make_handler("rate-limiting", {"minute": 2, "hour": 100}, node_resources={})
    result = _send(h)
    assert _rl(result)["ratelimit-limit"] == "2"
    assert _rl(result)["ratelimit-reset"] == str(60 - 26)  # T0 is hh:09:26
    _send(h)
    refused = _send(h)
    assert refused.status == 429
    assert _rl(refused)["retry-after"] == "34"


def test_ties_go_to_the_longer_period(clock: list[float]) -> None:
    h = make_handler("rate-limiting", {"minute": 5, "hour": 5}, node_resources={})
    result = _send(h)
    assert _rl(result)["ratelimit-reset"] == str(3600 - (9 * 60 + 26))


def test_hide_client_headers_and_custom_error(clock: list[float]) -> None:
    h = make_handler(
        "rate-limiting",
        {"minute": 1, "hide_client_headers": True, "error_code": 503, "error_message": "slow"},
        node_resources={},
    )
    assert _rl(_send(h)) == {}
    refused = _send(h)
    assert refused.status == 503
    assert refused.body == b'{"message":"slow"}'
    assert _rl(refused) == {}


def test_fractional_limit_rounds_up_like_kong(clock: list[float]) -> None:
    h = make_handler("rate-limiting", {"minute": 1.5}, node_resources={})
    first = _send(h)
    assert _rl(first)["x-ratelimit-limit-minute"] == "1.5"
    assert _rl(first)["x-ratelimit-remaining-minute"] == "0.5"
    assert _send(h).status == 200
    assert _send(h).status == 429


def test_windows_roll_over(clock: list[float]) -> None:
    h = make_handler("rate-limiting", {"minute": 1}, node_resources={})
    assert _send(h).status == 200
    assert _send(h).status == 429
    clock[0] += 34  # next minute
    assert _send(h).status == 200


def test_identifiers_are_counted_apart(clock: list[float]) -> None:
    h = make_handler("rate-limiting", {"minute": 1, "limit_by": "ip"}, node_resources={})
    assert _send(h, ip="10.0.0.1").status == 200
    assert _send(h, ip="10.0.0.2").status == 200
    assert _send(h, ip="10.0.0.1").status == 429


def test_limit_by_consumer_credential_and_fallback(clock: list[float]) -> None:
    alice = Consumer(id="c-alice", username="alice")
    bob = Consumer(id="c-bob", username="bob")
    h = make_handler("rate-limiting", {"minute": 1}, node_resources={})
    assert _send(h, consumer=alice, credential={"id": "k1"}).status == 200
    assert _send(h, consumer=bob, credential={"id": "k2"}).status == 200
    assert _send(h, consumer=alice, credential={"id": "k3"}).status == 429
    assert _send(h, ip="10.9.9.9").status == 200  # anonymous → by IP
    by_cred = make_handler(
        "rate-limiting", {"minute": 1, "limit_by": "credential"}, node_resources={}
    )
    assert _send(by_cred, consumer=alice, credential={"id": "k1"}).status == 200
    assert _send(by_cred, consumer=alice, credential={"id": "k3"}).status == 200
    assert _send(by_cred, consumer=alice, credential={"id": "k1"}).status == 429


def test_limit_by_header_path_and_service(clock: list[float]) -> None:
    by_header = make_handler(
        "rate-limiting",
        {"minute": 1, "limit_by": "header", "header_name": "X-Tenant"},
        node_resources={},
    )
    assert _send(by_header, headers={"x-tenant": "a"}).status == 200
    assert _send(by_header, headers={"x-tenant": "b"}).status == 200
    assert _send(by_header, headers={"X-Tenant": "a"}).status == 429
    assert _send(by_header).status == 200  # no header → by IP
    by_path = make_handler(
        "rate-limiting", {"minute": 1, "limit_by": "path", "path": "/hot"}, node_resources={}
    )
    assert _send(by_path, path="/hot", ip="1.1.1.1").status == 200
    assert _send(by_path, path="/hot", ip="2.2.2.2").status == 429  # one counter for the path
    assert _send(by_path, path="/cold", ip="3.3.3.3").status == 200  # other paths → by IP
    svc = Service(id="svc-1", host="upstream.test", cluster="c1")
    by_service = make_handler(
        "rate-limiting", {"minute": 1, "limit_by": "service"}, node_resources={}
    )
    assert _send(by_service, service=svc, ip="1.1.1.1").status == 200
    assert _send(by_service, service=svc, ip="2.2.2.2").status == 429


def test_route_scoped_instances_count_apart(clock: list[float]) -> None:
    shared: dict[str, Any] = {}
    on_r1 = make_handler("rate-limiting", {"minute": 1}, instance={"route": "r1"},
                         node_resources=shared)  # fmt: skip
    on_r2 = make_handler("rate-limiting", {"minute": 1}, instance={"route": "r2"},
                         node_resources=shared)  # fmt: skip
    assert _send(on_r1).status == 200
    assert _send(on_r2).status == 200
    assert _send(on_r1).status == 429


def test_counters_survive_a_new_snapshot(clock: list[float]) -> None:
    shared: dict[str, Any] = {}
    before = make_handler("rate-limiting", {"minute": 2}, node_resources=shared)
    assert _send(before).status == 200
    after = make_handler("rate-limiting", {"minute": 2}, node_resources=shared)
    assert _send(after).status == 200
    assert _send(after).status == 429


def test_hostile_identifier_values(clock: list[float]) -> None:
    h = make_handler(
        "rate-limiting",
        {"minute": 1, "limit_by": "header", "header_name": "x-key"},
        node_resources={},
    )
    huge = "k" * 16000
    assert _send(h, headers={"x-key": huge}).status == 200
    assert _send(h, headers={"x-key": huge}).status == 429
    assert _send(h, headers={"x-key": "\xff\x01:"}).status == 200


def test_period_starts_are_utc_calendar_windows() -> None:
    starts = period_starts(T0)
    assert starts == (
        T0,
        calendar.timegm((2026, 3, 14, 15, 9, 0)),
        calendar.timegm((2026, 3, 14, 15, 0, 0)),
        calendar.timegm((2026, 3, 14, 0, 0, 0)),
        calendar.timegm((2026, 3, 1, 0, 0, 0)),
        calendar.timegm((2026, 1, 1, 0, 0, 0)),
    )


# --------------------------------------------------------------------------- the shared store


def test_store_counts_windows_and_forgets_expired_slots() -> None:
    store = CounterStore(None, slots=64 * 8)
    assert [hit(store, "a", 2) for _ in range(3)] == [True, True, False]
    assert hit(store, "a", 2, window=1060, now=1060)  # a new window starts at zero
    # fill one stripe's probe range with live keys, then let them expire: slots are reused
    keys = [f"k{i}" for i in range(2000)]
    for key in keys:
        hit(store, key, 5)
    assert store.evictions > 0  # far more keys than slots: live counters were evicted
    store.evictions = 0
    for key in keys[:50]:
        hit(store, key, 5, window=5000, now=5000)  # every old slot has expired by now
    assert store.evictions == 0
    store.close()


def test_store_peek_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESHGATE_NODE_ID", raising=False)
    assert default_path() is None
    monkeypatch.setenv("MESHGATE_NODE_ID", "node/1")
    monkeypatch.setenv("MESHGATE_RUNTIME_DIR", str(tmp_path))
    path = default_path()
    assert path == tmp_path / "rate-limiting-node_1.v2.counters"
    store = open_node_store()
    assert store.path == path
    group = group_hash("x")
    fp = period_fingerprint(group, 0)
    stripe, homes = store.placement(group, [fp])
    store.hit(stripe, [fp], homes, [7], [8], [10], 7)
    assert store.peek(group, fp, 7) == 1
    assert store.peek(group, fp, 8) == 0
    other = CounterStore(path)  # a second process maps the same file
    assert other.peek(group, fp, 7) == 1
    other.close()


def test_store_is_exact_across_processes(tmp_path: Path) -> None:
    """4 spawned processes x 5000 attempts against a limit of 12000 → exactly 12000 allowed
    (they start together once all are ready; without the stripe lock ~60 % more get through)."""
    spawn = multiprocessing.get_context("spawn")
    path = str(tmp_path / "shared.counters")
    CounterStore(path).close()  # lay the file out once
    start = spawn.Event()
    out = spawn.Queue()
    procs = [
        spawn.Process(target=hammer, args=(path, "tenant-1", 12000, 5000, start, out))
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    assert [out.get(timeout=50) for _ in procs] == ["ready"] * len(procs)
    start.set()
    allowed = [out.get(timeout=50) for _ in procs]
    for p in procs:
        p.join(10)
    assert sum(allowed) == 12000
