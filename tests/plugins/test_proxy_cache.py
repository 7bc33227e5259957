"""proxy-cache: config, Miss → Hit → Refresh, Bypass rules, Cache-Control, cache keys,
diagnostic headers and the bounded LRU memory store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.plugins.proxy_cache import handler as pc_handler
from meshgate.plugins.proxy_cache.handler import parse_directives, parse_mime
from meshgate.plugins.proxy_cache.store import Entry, MemoryCache, cache_key
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, PhaseResult, make_handler, run_phases

JSON = {"Content-Type": "application/json"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1_800_000_000.0]
    monkeypatch.setattr(pc_handler, "wall_clock", lambda: now[0])
    return now


def _cache(config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    return make_handler("proxy-cache", {"strategy": "memory", **(config or {})},
                        node_resources=kwargs.pop("shared", {}), **kwargs)  # fmt: skip


def _get(handler: Any, path: str = "/items?b=2&a=1", method: str = "GET",
         upstream: tuple[int, Mapping[str, str], bytes] = (200, JSON, b'{"n":1}'),
         headers: Mapping[str, str] | Sequence[tuple[str, str]] = (),
         chunks: Sequence[bytes] | None = None) -> PhaseResult:  # fmt: skip
    ctx = FakeContext(method, path, headers=headers)
    return run_phases(handler, ctx, upstream=upstream, chunks=chunks)


def _status(result: PhaseResult) -> str | None:
    values = result.headers.get("x-cache-status")
    return values[0] if values else None


def test_config() -> None:
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("proxy-cache", {})
    assert "config.strategy" in info.value.to_fields()
    conf = validate_plugin_config("proxy-cache", {"strategy": "memory"})
    assert conf["response_code"] == [200, 301, 404]
    assert conf["request_method"] == ["GET", "HEAD"]
    assert conf["content_type"] == ["text/plain", "application/json"]
    assert conf["cache_ttl"] == 300
    assert conf["memory"] == {"dictionary_name": "kong_db_cache"}
    assert conf["response_headers"] == {"age": True, "X-Cache-Status": True, "X-Cache-Key": True}
    for bad, field in (
        ({"strategy": "redis"}, "config.strategy"),
        ({"strategy": "memory", "response_code": [99]}, "config.response_code"),
        ({"strategy": "memory", "response_code": []}, "config.response_code"),
        ({"strategy": "memory", "request_method": ["DELETE"]}, "config.request_method.0"),
        ({"strategy": "memory", "cache_ttl": 0}, "config.cache_ttl"),
        ({"strategy": "memory", "response_headers": {"X-Cache-Hit": True}},
         "config.response_headers.X-Cache-Hit"),
    ):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            validate_plugin_config("proxy-cache", bad)
        assert field in info.value.to_fields(), (bad, info.value.to_fields())


def test_miss_then_hit_then_refresh(clock: list[float]) -> None:
    h = _cache({"cache_ttl": 10, "storage_ttl": 60})
    miss = _get(h, upstream=(200, {**JSON, "X-Upstream": "u1"}, b'{"n":1}'))
    assert _status(miss) == "Miss"
    key = miss.headers["x-cache-key"][0]
    assert len(key) == 64
    clock[0] += 3
    hit = _get(h, upstream=(200, JSON, b'{"n":"upstream should not be asked"}'))
    assert hit.status == 200
    assert hit.body == b'{"n":1}'
    assert _status(hit) == "Hit"
    assert hit.headers["age"] == ["3"]
    assert hit.headers["x-cache-key"] == [key]
    assert hit.headers["x-upstream"] == ["u1"]
    assert hit.headers["content-type"] == ["application/json"]
    clock[0] += 8  # 11 s old > cache_ttl
    refresh = _get(h, upstream=(200, JSON, b'{"n":2}'))
    assert _status(refresh) == "Refresh"
    assert refresh.body == b'{"n":2}'
    assert _get(h).body == b'{"n":2}'


def test_key_ignores_query_order_and_separates_methods(clock: list[float]) -> None:
    h = _cache()
    _get(h, "/items?b=2&a=1")
    assert _status(_get(h, "/items?a=1&b=2")) == "Hit"
    assert _status(_get(h, "/items?a=1&b=3")) == "Miss"
    assert _status(_get(h, "/items?b=2&a=1", method="HEAD", upstream=(200, JSON, b""))) == "Miss"


def test_vary_query_params_and_headers(clock: list[float]) -> None:
    h = _cache({"vary_query_params": ["page"], "vary_headers": ["Accept-Language"]})
    _get(h, "/list?page=1&utm=a", headers={"Accept-Language": "en"})
    assert _status(_get(h, "/list?page=1&utm=b", headers={"Accept-Language": "en"})) == "Hit"
    assert _status(_get(h, "/list?page=1", headers={"Accept-Language": "de"})) == "Miss"
    assert _status(_get(h, "/list?page=2", headers={"Accept-Language": "en"})) == "Miss"


def test_ignore_uri_case(clock: list[float]) -> None:
    h = _cache({"ignore_uri_case": True})
    _get(h, "/Items")
    assert _status(_get(h, "/ITEMS")) == "Hit"
    strict = _cache()
    _get(strict, "/Items")
    assert _status(_get(strict, "/ITEMS")) == "Miss"


def test_bypass_rules(clock: list[float]) -> None:
    h = _cache()
    assert _status(_get(h, method="POST")) == "Bypass"
    assert (
        _status(_get(h, "/html", upstream=(200, {"Content-Type": "text/html"}, b"<p>"))) == "Bypass"
    )
    assert _status(_get(h, "/html")) == "Miss"  # the html answer was not stored
    assert _status(_get(h, "/err", upstream=(500, JSON, b"{}"))) == "Bypass"
    assert _status(_get(h, "/none", upstream=(200, {}, b"x"))) == "Bypass"  # no Content-Type
    charset = _get(
        h, "/cs", upstream=(200, {"Content-Type": "application/json; charset=utf-8"}, b"{}")
    )
    assert _status(charset) == "Bypass"  # parameters must match exactly, as Kong


def test_content_type_with_parameters_and_wildcards(clock: list[float]) -> None:
    h = _cache({"content_type": ["application/json; charset=utf-8", "image/*"]})
    _get(h, "/a", upstream=(200, {"Content-Type": "application/json; charset=UTF-8"}, b"{}"))
    assert _status(_get(h, "/a")) == "Hit"
    _get(h, "/img", upstream=(200, {"Content-Type": "image/png"}, b"\x89PNG"))
    assert _get(h, "/img").body == b"\x89PNG"


def test_cache_control_mode(clock: list[float]) -> None:
    h = _cache({"cache_control": True})
    assert (
        _status(_get(h, "/p", upstream=(200, {**JSON, "Cache-Control": "private"}, b"{}")))
        == "Bypass"
    )
    assert (
        _status(_get(h, "/z", upstream=(200, {**JSON, "Cache-Control": "max-age=0"}, b"{}")))
        == "Bypass"
    )
    assert _status(_get(h, "/n", upstream=(200, JSON, b"{}"))) == "Bypass"  # no lifetime given
    _get(h, "/m", upstream=(200, {**JSON, "Cache-Control": "public, max-age=5"}, b"{}"))
    assert _status(_get(h, "/m")) == "Hit"
    assert _status(_get(h, "/m", headers={"Cache-Control": "no-cache"})) == "Bypass"
    assert _status(_get(h, "/m", headers={"Authorization": "Bearer x"})) == "Bypass"
    clock[0] += 2
    fresh = (200, {**JSON, "Cache-Control": "max-age=5"}, b"{}")
    assert (
        _status(_get(h, "/m", headers={"Cache-Control": "max-age=1"}, upstream=fresh)) == "Refresh"
    )
    only = _get(h, "/never", headers={"Cache-Control": "only-if-cached"})
    assert only.status == 504
    clock[0] += 10  # storage ttl = the resource's 5 s: gone
    assert _status(_get(h, "/m", upstream=fresh)) == "Miss"


def test_diagnostic_headers_follow_config_and_kong_debug(clock: list[float]) -> None:
    h = _cache({"response_headers": {"age": False, "X-Cache-Status": False, "X-Cache-Key": False}})
    first = _get(h)
    assert "x-cache-status" not in first.headers
    assert "x-cache-key" not in first.headers
    hit = _get(h)
    assert hit.body == b'{"n":1}'
    assert "age" not in hit.headers
    assert "x-cache-status" not in hit.headers
    debug = _get(h, headers={"Kong-Debug": "1"})
    assert _status(debug) == "Hit"
    assert "age" in debug.headers


def test_multi_valued_headers_are_replayed(clock: list[float]) -> None:
    h = _cache()
    headers = [("content-type", "text/plain"), ("x-multi", "a"), ("x-multi", "b")]
    h.cache.put(_key_of(h, "/m2"), Entry(200, headers, b"t", clock[0], 300, clock[0] + 300))
    hit = run_phases(h, FakeContext("GET", "/m2"))
    assert _status(hit) == "Hit"
    assert hit.body == b"t"
    assert hit.headers["x-multi"] == ["a", "b"]


def _key_of(handler: Any, path: str) -> str:
    return cache_key(None, None, "GET", path, {}, {}, None, None)


def test_stored_headers_skip_hop_by_hop_and_rate_limit_counts(clock: list[float]) -> None:
    h = _cache()
    upstream = (200, {"Content-Type": "text/plain", "X-RateLimit-Remaining-Minute": "3",
                      "Keep-Alive": "timeout=5", "X-Kept": "1"}, b"body")  # fmt: skip
    _get(h, "/s", upstream=upstream)
    hit = _get(h, "/s")
    assert hit.headers["x-kept"] == ["1"]
    assert "x-ratelimit-remaining-minute" not in hit.headers
    assert "keep-alive" not in hit.headers


def test_chunked_bodies_are_assembled_and_huge_ones_skipped(clock: list[float]) -> None:
    h = _cache()
    _get(h, "/c", upstream=(200, JSON, b""), chunks=[b'{"a":', b"1", b"}"])
    assert _get(h, "/c").body == b'{"a":1}'
    h.cache.max_entry = 100
    _get(h, "/big", upstream=(200, JSON, b""), chunks=[b"x" * 60, b"y" * 60])
    assert _status(_get(h, "/big")) == "Miss"


def test_instances_share_a_dictionary_by_name(clock: list[float]) -> None:
    shared: dict[str, Any] = {}
    a = _cache(shared=shared)
    b = _cache(shared=shared)
    other = _cache({"memory": {"dictionary_name": "other"}}, shared=shared)
    _get(a, "/x")
    assert _status(_get(b, "/x")) == "Hit"
    assert _status(_get(other, "/x")) == "Miss"


def test_memory_cache_is_a_bounded_lru() -> None:
    cache = MemoryCache(budget=4096)
    for i in range(10):
        assert cache.put(f"k{i}", Entry(200, [], b"x" * 500, 0, 300, 1e12))
        cache.get("k0", 1)  # keep k0 recently used
    assert cache.used <= 4096
    assert cache.get("k0", 1) is not None
    assert cache.get("k1", 1) is None  # least recently used went first
    assert cache.get("k9", 1) is not None
    assert not cache.put("huge", Entry(200, [], b"x" * 2000, 0, 300, 1e12))  # > budget / 4
    cache.put("old", Entry(200, [], b"", 0, 300, expires=5))
    assert cache.get("old", 6) is None
    cache.flush()
    assert len(cache) == 0
    assert cache.used == 0


def test_parsers() -> None:
    assert parse_directives('max-age=60, No-Cache, s-maxage="10", x=y') == {
        "max-age": 60, "no-cache": True, "s-maxage": 10, "x": "y"}  # fmt: skip
    assert parse_directives(None) == {}
    assert parse_mime("Text/HTML; Charset=UTF-8") == ("text", "html", {"charset": "utf-8"})
    assert parse_mime("garbage") is None
