"""request-transformer with FakeContext: config rules (Kong's messages), Kong's order of
operations on headers, query string, JSON/form bodies, method and URI templates, bad input."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases


def fields(config: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("request-transformer", config)
    return caught.value.to_fields()


def run(config: dict[str, Any], ctx: FakeContext) -> Any:
    return run_phases(make_handler("request-transformer", config), ctx)


# ------------------------------------------------------------------ config


def test_defaults_are_kongs() -> None:
    got = validate_plugin_config("request-transformer", {})
    assert got["http_method"] is None
    assert got["remove"] == {"body": [], "headers": [], "querystring": []}
    assert got["replace"] == {"body": [], "headers": [], "querystring": [], "uri": None}
    assert got["append"] == {"body": [], "headers": [], "querystring": []}


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({"http_method": "get"}, "config.http_method", "invalid value: get"),
        (
            {"remove": {"headers": ["bad header"]}},
            "config.remove.headers.0",
            "'bad header' is not a valid header",
        ),
        ({"add": {"headers": ["nocolon"]}}, "config.add.headers.0", "invalid value: nocolon"),
        ({"add": {"headers": ["x y:1"]}}, "config.add.headers.0", "'x y' is not a valid header"),
        (
            {"rename": {"headers": ["a:b c"]}},
            "config.rename.headers.0",
            "'b c' is not a valid header",
        ),
        ({"add": {"body": ["k"]}}, "config.add.body.0", "key 'k' has no value"),
        (
            {"append": {"querystring": ["k:"]}},
            "config.append.querystring.0",
            "key 'k' has no value",
        ),
        (
            {"replace": {"uri": "/$(nope.x)"}},
            "config.replace.uri",
            "value '/$(nope.x)' is not in supported format",
        ),
        ({"add": {"body": ["k:$(headers.x"]}}, "config.add.body.0", "unclosed"),
        (
            {"add": {"body": ["k:$(os.execute('x'))"]}},
            "config.add.body.0",
            "not in supported format",
        ),
        ({"add": {"cookies": []}}, "config.add.cookies", "unknown field"),
        ({"extra": 1}, "config.extra", "unknown field"),
    ],
)
def test_config_errors(config: dict[str, Any], path: str, message: str) -> None:
    got = fields(config)
    assert path in got, got
    assert message in got[path]


def test_templates_accept_the_forms_in_use() -> None:
    validate_plugin_config(
        "request-transformer",
        {"add": {"headers": ["x-a:$(headers.x_b)", "x-c:$(headers[\"x-d\"] or 'none')",
                             "x-e:$(uri_captures[1])$(shared.k)$(query_params['q'])"]}},
    )  # fmt: skip


# ------------------------------------------------------------------ headers


def test_header_operations_in_kongs_order() -> None:
    ctx = FakeContext(
        "GET",
        "/",
        headers={"x-remove": "1", "x-old": "v", "x-rep": "a", "x-keep": "k", "x-app": "1"},
    )
    res = run(
        {
            "remove": {"headers": ["x-remove"]},
            "rename": {"headers": ["x-old:x-new"]},
            "replace": {"headers": ["x-rep:b", "x-absent:nope"]},
            "add": {"headers": ["x-keep:not-this", "x-added:yes", "x-remove:again"]},
            "append": {"headers": ["x-app:2", "x-fresh:1"]},
        },
        ctx,
    )
    up = ctx.upstream_headers()
    assert res.exit is None
    assert "x-old" not in up
    assert up["x-new"] == ["v"]
    assert up["x-rep"] == ["b"]
    assert "x-absent" not in up
    assert up["x-keep"] == ["k"]
    assert up["x-added"] == ["yes"]
    assert up["x-remove"] == ["again"]  # removed first, then added (Kong's order)
    assert up["x-app"] == ["1", "2"]
    assert up["x-fresh"] == ["1"]


def test_rename_keeps_every_value() -> None:
    ctx = FakeContext("GET", "/", headers=[("x-a", "1"), ("x-a", "2")])
    run({"rename": {"headers": ["x-a:x-b"]}}, ctx)
    assert ctx.upstream_headers()["x-b"] == ["1", "2"]


def test_replace_host_sets_host_even_when_absent_from_ops() -> None:
    ctx = FakeContext("GET", "/")
    run({"replace": {"headers": ["host:internal.example"]}, "add": {"headers": ["host:no"]}}, ctx)
    assert ctx.upstream_headers()["host"] == ["internal.example"]


def test_templates_read_the_request_before_changes() -> None:
    ctx = FakeContext("GET", "/p?user=bob&multi=1&multi=2", headers={"x-tenant": "t1"},
                      uri_captures={"id": "42"})  # fmt: skip
    ctx.shared["flag"] = "on"
    run(
        {
            "remove": {"headers": ["x-tenant"]},
            "add": {
                "headers": [
                    "x-from-header:$(headers.x_tenant)",
                    "x-from-query:$(query_params.user)",
                    "x-multi:$(query_params.multi)",
                    "x-capture:id=$(uri_captures.id)",
                    "x-default:$(headers.missing or query_params[\"nope\"] or 'dflt')",
                    "x-empty:[$(headers.missing)]",
                    "x-shared:$(shared.flag)",
                ]
            },
        },
        ctx,
    )
    up = ctx.upstream_headers()
    assert "x-tenant" not in up
    assert up["x-from-header"] == ["t1"]
    assert up["x-from-query"] == ["bob"]
    assert up["x-multi"] == ["1, 2"]
    assert up["x-capture"] == ["id=42"]
    assert up["x-default"] == ["dflt"]
    assert up["x-empty"] == ["[]"]
    assert up["x-shared"] == ["on"]


def test_hostile_rendered_header_value_is_400_not_500() -> None:
    ctx = FakeContext("GET", "/?v=a%0D%0AInjected:%20yes")
    res = run({"add": {"headers": ["x-v:$(query_params.v)"]}}, ctx)
    assert res.exit is not None
    assert res.status == 400
    assert b"invalid value for header" in res.body


def test_engine_owned_headers_are_left_alone() -> None:
    ctx = FakeContext("POST", "/", headers={"content-type": "text/plain"}, body=b"abc")
    res = run({"remove": {"headers": ["content-length", "connection"]}}, ctx)
    assert res.exit is None
    assert ctx.upstream_headers()["content-length"] == ["3"]


# ------------------------------------------------------------------ query string


def test_querystring_operations() -> None:
    ctx = FakeContext("GET", "/?drop=1&old=2&rep=3&keep=4&app=5&flag")
    run(
        {
            "remove": {"querystring": ["drop"]},
            "rename": {"querystring": ["old:new"]},
            "replace": {"querystring": ["rep:R", "absent:x"]},
            "add": {"querystring": ["keep:no", "added:a b&c"]},
            "append": {"querystring": ["app:6"]},
        },
        ctx,
    )
    assert ctx.upstream_query == "rep=R&keep=4&app=5&app=6&flag&new=2&added=a%20b%26c"


def test_no_query_ops_leave_the_query_alone() -> None:
    ctx = FakeContext("GET", "/?a=1")
    run({"add": {"headers": ["x:1"]}}, ctx)
    assert ctx.upstream_query is None


# ------------------------------------------------------------------ body


def json_ctx(body: bytes, content_type: str = "application/json") -> FakeContext:
    return FakeContext("POST", "/?q=7", headers={"content-type": content_type}, body=body)


def test_json_body_operations() -> None:
    ctx = json_ctx(b'{"drop":1,"old":2,"rep":3,"keep":4,"app":"x","f":false,"n":null}')
    res = run(
        {
            "remove": {"body": ["drop"]},
            "rename": {"body": ["old:new", "n:nn"]},
            "replace": {"body": ["rep:R", "absent:x"]},
            "add": {"body": ["keep:no", "f:yes", "q:$(query_params.q)"]},
            "append": {"body": ["app:y", "fresh:z"]},
        },
        ctx,
    )
    assert res.exit is None
    assert json.loads(ctx.forwarded_body) == {
        "new": 2, "nn": None, "rep": "R", "keep": 4, "app": ["x", "y"], "f": "yes",
        "q": "7", "fresh": ["z"],
    }  # fmt: skip


def test_empty_json_body_gets_only_add_and_append() -> None:
    ctx = json_ctx(b"")
    run({"remove": {"body": ["a"]}, "add": {"body": ["a:1"]}}, ctx)
    assert json.loads(ctx.forwarded_body) == {"a": "1"}


@pytest.mark.parametrize("body", [b"{not json", b"[" * 100000 + b"]" * 100000, b'{"a":'])
def test_invalid_json_body_is_400(body: bytes) -> None:
    res = run({"add": {"body": ["a:1"]}}, json_ctx(body))
    assert res.exit is not None
    assert res.status == 400
    assert json.loads(res.body) == {"message": "request body is not valid JSON"}


def test_json_array_body_is_forwarded_untouched() -> None:
    ctx = json_ctx(b"[1,2]")
    res = run({"add": {"body": ["a:1"]}}, ctx)
    assert res.exit is None
    assert ctx.forwarded_body == b"[1,2]"


def test_huge_body_is_413() -> None:
    handler = make_handler("request-transformer", {"add": {"body": ["a:1"]}})
    handler.body_limit = 1024
    res = run_phases(handler, json_ctx(b'{"x":"' + b"a" * 4096 + b'"}'))
    assert res.exit is not None
    assert res.status == 413


def test_form_body_operations() -> None:
    ctx = json_ctx(b"drop=1&old=2&rep=3&keep=4&app=5", "application/x-www-form-urlencoded")
    run(
        {
            "remove": {"body": ["drop"]},
            "rename": {"body": ["old:new"]},
            "replace": {"body": ["rep:R"]},
            "add": {"body": ["keep:no", "added:a b"]},
            "append": {"body": ["app:6"]},
        },
        ctx,
    )
    assert ctx.forwarded_body == b"rep=R&keep=4&app=5&app=6&new=2&added=a%20b"


def test_other_content_types_are_untouched() -> None:
    for content_type in ("text/plain", "multipart/form-data; boundary=x"):
        ctx = json_ctx(b"raw", content_type)
        res = run({"add": {"body": ["a:1"]}}, ctx)
        assert res.exit is None
        assert ctx.forwarded_body == b"raw"


def test_body_is_only_buffered_when_body_ops_are_configured() -> None:
    assert make_handler("request-transformer", {"add": {"headers": ["a:1"]}}).needs_body is False
    assert make_handler("request-transformer", {"add": {"body": ["a:1"]}}).needs_body is True
    assert make_handler("request-transformer", {"http_method": "GET"}).needs_body is True
    assert make_handler("request-transformer", {"http_method": "POST"}).needs_body is False


# ------------------------------------------------------------------ method and uri


def test_method_change_to_get_moves_form_arguments_to_the_query() -> None:
    ctx = FakeContext("POST", "/?a=1", headers={"content-type": "application/x-www-form-urlencoded"},
                      body=b"a=2&b=3")  # fmt: skip
    run({"http_method": "GET"}, ctx)
    assert ctx.upstream_method == "GET"
    assert ctx.upstream_query == "a=1&a=2&b=3"


def test_replace_uri_with_captures() -> None:
    ctx = FakeContext("GET", "/v1/users/7", uri_captures={"id": "7"})
    run({"replace": {"uri": "/internal/users/$(uri_captures.id)/profile"}}, ctx)
    assert ctx.upstream_path == "/internal/users/7/profile"


def test_replace_uri_escapes_hostile_values() -> None:
    ctx = FakeContext("GET", "/x", uri_captures={"id": "a b?c#\r\n"})
    res = run({"replace": {"uri": "$(uri_captures.id)"}}, ctx)
    assert res.exit is None
    assert ctx.upstream_path == "/a%20b%3Fc%23%0D%0A"


# ------------------------------------------------------------------ cost


def test_per_request_cost_is_small() -> None:
    handler = make_handler(
        "request-transformer",
        {"add": {"headers": ["x-a:1", "x-b:$(headers.host)"]}, "remove": {"headers": ["x-c"]}},
    )
    ctx = FakeContext("GET", "/", headers={"x-c": "1"})
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        handler.access(ctx)  # type: ignore[attr-defined]
    per_request_us = (time.perf_counter() - started) / n * 1e6
    assert per_request_us < 500  # generous: CI machines are noisy; typical is ~10 µs
