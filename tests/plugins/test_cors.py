"""cors: config, preflight answers, response headers for exact/regex/wildcard origins, Vary,
credentials, private network, preflight_continue (Kong's semantics)."""

from __future__ import annotations

from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.plugins.cors.handler import normalize_origin
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, PhaseResult, make_handler, run_phases


def _preflight(config: dict[str, Any], origin: str = "https://app.example.com",
               **headers: str) -> PhaseResult:  # fmt: skip
    handler = make_handler("cors", config)
    pairs = {"Origin": origin, "Access-Control-Request-Method": "PUT",
             **{k.replace("_", "-"): v for k, v in headers.items()}}  # fmt: skip
    return run_phases(handler, FakeContext("OPTIONS", "/api", headers=pairs),
                      upstream=(204, {"X-Upstream": "yes"}, b""))  # fmt: skip


def _simple(config: dict[str, Any], origin: str | None = "https://app.example.com",
            method: str = "GET") -> PhaseResult:  # fmt: skip
    handler = make_handler("cors", config)
    headers = {"Origin": origin} if origin is not None else {}
    return run_phases(handler, FakeContext(method, "/api", headers=headers),
                      upstream=(200, {"Content-Type": "text/plain"}, b"data"))  # fmt: skip


def _h(result: PhaseResult, name: str) -> str | None:
    values = result.headers.get(name.lower())
    return ", ".join(values) if values else None


def test_config_defaults_and_validation() -> None:
    conf = validate_plugin_config("cors", {})
    assert conf["methods"] == ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS",
                               "TRACE", "CONNECT"]  # fmt: skip
    assert conf["credentials"] is False
    assert conf["preflight_continue"] is False
    assert conf["origins"] is None
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("cors", {"origins": ["https://a.com", "(bad"]})
    assert info.value.to_fields()["config.origins"] == "'(bad' is not a valid regex"
    with pytest.raises(ConfigError) as info:
        validate_plugin_config("cors", {"methods": ["GET", "FETCH"]})
    assert "config.methods.1" in info.value.to_fields()
    with pytest.raises(ConfigError):
        validate_plugin_config("cors", {"headers": ["X-Ok\r\nX-Evil: 1"]})


def test_preflight_is_answered_with_kongs_headers() -> None:
    result = _preflight(
        {"origins": ["https://app.example.com"], "headers": ["X-Token", "Content-Type"],
         "methods": ["GET", "PUT"], "max_age": 3600, "credentials": True},
    )  # fmt: skip
    assert result.status == 200
    assert result.body == b""
    assert _h(result, "Access-Control-Allow-Origin") == "https://app.example.com"
    assert _h(result, "Access-Control-Allow-Headers") == "X-Token,Content-Type"
    assert _h(result, "Access-Control-Allow-Methods") == "GET,PUT"
    assert _h(result, "Access-Control-Max-Age") == "3600"
    assert _h(result, "Access-Control-Allow-Credentials") == "true"
    assert _h(result, "Vary") == "Origin"
    assert _h(result, "X-Upstream") is None  # never reached the upstream


def test_preflight_echoes_requested_headers_and_defaults_to_star() -> None:
    result = _preflight({}, access_control_request_headers="X-A, X-B")
    assert _h(result, "Access-Control-Allow-Origin") == "*"
    assert _h(result, "Access-Control-Allow-Headers") == "X-A, X-B"
    assert _h(result, "Access-Control-Allow-Methods") == (
        "GET,HEAD,PUT,PATCH,POST,DELETE,OPTIONS,TRACE,CONNECT"
    )
    assert _h(result, "Vary") is None


def test_preflight_continue_goes_upstream_untouched() -> None:
    result = _preflight({"preflight_continue": True})
    assert result.status == 204
    assert _h(result, "X-Upstream") == "yes"
    assert _h(result, "Access-Control-Allow-Origin") is None


def test_options_without_request_method_is_not_a_preflight() -> None:
    handler = make_handler("cors", {})
    ctx = FakeContext("OPTIONS", "/", headers={"Origin": "https://a.com"})
    result = run_phases(handler, ctx, upstream=(204, {}, b""))
    assert result.status == 204
    assert _h(result, "Access-Control-Allow-Origin") == "*"


def test_private_network_only_when_asked() -> None:
    config = {"private_network": True}
    asked = _preflight(config, access_control_request_private_network="true")
    assert _h(asked, "Access-Control-Allow-Private-Network") == "true"
    assert _h(_preflight(config), "Access-Control-Allow-Private-Network") is None


def test_regex_and_plain_origins() -> None:
    config = {
        "origins": [r"https://.*\.example\.com", "http://localhost:3000", r"(.*\.)?trusted\.org"]
    }
    ok = _simple(config, "https://shop.example.com")
    assert _h(ok, "Access-Control-Allow-Origin") == "https://shop.example.com"
    assert _h(ok, "Vary") == "Origin"
    assert _h(_simple(config, "http://localhost:3000"), "Access-Control-Allow-Origin") == (
        "http://localhost:3000"
    )
    # regexes are anchored: a suffix does not sneak through
    assert (
        _h(_simple(config, "https://shop.example.com.evil.net"), "Access-Control-Allow-Origin")
        is None
    )
    # an entry without ':' is matched against the origin's host
    assert _h(_simple(config, "http://api.trusted.org:8443"), "Access-Control-Allow-Origin") == (
        "http://api.trusted.org:8443"
    )
    refused = _simple(config, "https://evil.net")
    assert _h(refused, "Access-Control-Allow-Origin") is None
    assert _h(refused, "Vary") == "Origin"
    assert refused.body == b"data"  # CORS never blocks the response itself


def test_single_plain_origin_is_sent_as_is() -> None:
    result = _simple({"origins": ["https://only.example"]}, "https://other.example")
    assert _h(result, "Access-Control-Allow-Origin") == "https://only.example"


def test_credentials_with_wildcard_reflect_the_origin() -> None:
    result = _simple({"credentials": True}, "https://a.example")
    assert _h(result, "Access-Control-Allow-Origin") == "https://a.example"
    assert _h(result, "Access-Control-Allow-Credentials") == "true"
    assert _h(result, "Vary") == "Origin"


def test_exposed_headers_and_no_origin() -> None:
    config = {"exposed_headers": ["X-Total", "X-Page"]}
    assert _h(_simple(config), "Access-Control-Expose-Headers") == "X-Total,X-Page"
    no_origin = _simple(config, origin=None)
    assert _h(no_origin, "Access-Control-Allow-Origin") == "*"  # Kong 3.9: still sent
    skipped = _simple({**config, "allow_origin_absent": False}, origin=None)
    assert _h(skipped, "Access-Control-Allow-Origin") is None


def test_vary_is_added_to_the_upstreams() -> None:
    handler = make_handler("cors", {"origins": ["https://a.example", "https://b.example"]})
    ctx = FakeContext("GET", "/", headers={"Origin": "https://b.example"})
    result = run_phases(handler, ctx, upstream=(200, {"Vary": "Accept-Encoding"}, b""))
    assert result.headers["vary"] == ["Accept-Encoding", "Origin"]


def test_normalize_origin() -> None:
    assert normalize_origin("https://A.example.com:443") == (
        "https://A.example.com",
        "A.example.com",
    )
    assert normalize_origin("http://x.test:80") == ("http://x.test", "x.test")
    assert normalize_origin("http://x.test:8080") == ("http://x.test:8080", "x.test")
    assert normalize_origin("null") == ("null", "null")
    assert normalize_origin("http://[::1]:99999") == ("http://[::1]:99999", "http://[::1]:99999")
