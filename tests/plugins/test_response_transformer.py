"""response-transformer with FakeContext: config rules, header operations in Kong's order,
JSON body fields with json_types, what is left untouched, the buffer bound."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.api import Phase
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases

JSON = {"Content-Type": "application/json"}


def run(config: dict[str, Any], headers: dict[str, str], body: bytes,
        chunks: list[bytes] | None = None) -> Any:  # fmt: skip
    handler = make_handler("response-transformer", config)
    return run_phases(
        handler, FakeContext("GET", "/"), upstream=(200, headers, body), chunks=chunks
    )


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({"add": {"json": ["novalue"]}}, "config.add.json.0", "invalid value: novalue"),
        ({"add": {"headers": ["x"]}}, "config.add.headers.0", "invalid value: x"),
        ({"rename": {"headers": ["a b:c"]}}, "config.rename.headers.0", "'a b' is not a valid header"),
        ({"append": {"json_types": ["int"]}}, "config.append.json_types.0",
         "expected one of: boolean, number, string"),
        ({"remove": {"body": []}}, "config.remove.body", "unknown field"),
    ],
)  # fmt: skip
def test_config_errors(config: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("response-transformer", config)
    got = caught.value.to_fields()
    assert message in got.get(path, ""), got


def test_defaults() -> None:
    got = validate_plugin_config("response-transformer", {})
    assert got["add"] == {"json": [], "json_types": [], "headers": []}
    assert got["remove"] == {"json": [], "headers": []}


def test_header_operations() -> None:
    res = run(
        {
            "remove": {"headers": ["x-drop"]},
            "rename": {"headers": ["x-old:x-new"]},
            "replace": {"headers": ["x-rep:R", "x-absent:no"]},
            "add": {"headers": ["x-rep:not", "x-add:A"]},
            "append": {"headers": ["x-app:2"]},
        },
        {"X-Drop": "1", "X-Old": "o", "X-Rep": "r", "X-App": "1", "Content-Type": "text/plain"},
        b"plain",
    )
    h = res.headers
    assert "x-drop" not in h
    assert "x-old" not in h
    assert h["x-new"] == ["o"]
    assert h["x-rep"] == ["R"]
    assert "x-absent" not in h
    assert h["x-add"] == ["A"]
    assert h["x-app"] == ["1", "2"]
    assert res.body == b"plain"


def test_json_body_operations_with_types() -> None:
    body = json.dumps({"drop": 1, "old": 2, "rep": 3, "keep": 4, "app": "a", "f": False}).encode()
    res = run(
        {
            "remove": {"json": ["drop"]},
            "rename": {"json": ["old:new"]},
            "replace": {"json": ["rep:9", "absent:1"], "json_types": ["number"]},
            "add": {"json": ["keep:x", "f:true", "s:1.5", "b:true"],
                    "json_types": ["string", "boolean", "number", "string"]},
            "append": {"json": ["app:b"]},
        },
        JSON,
        body,
        chunks=[body[:5], body[5:]],
    )  # fmt: skip
    assert json.loads(res.body) == {
        "new": 2, "rep": 9, "keep": 4, "app": ["a", "b"], "f": True, "s": 1.5, "b": "true",
    }  # fmt: skip


def test_bad_number_value_is_skipped() -> None:
    res = run({"add": {"json": ["n:abc"], "json_types": ["number"]}}, JSON, b"{}")
    assert json.loads(res.body) == {}


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Type": "text/html"}, b"<p>{}</p>"),
        (JSON, b"{not json"),
        (JSON, b"[1, 2]"),
        ({}, b'{"a": 1}'),
    ],
)
def test_non_json_or_unparsable_bodies_are_untouched(headers: dict[str, str], body: bytes) -> None:
    assert run({"add": {"json": ["x:1"]}}, headers, body).body == body


def test_json_media_types() -> None:
    for content_type in ("application/json; charset=utf-8", "application/problem+json",
                         "text/plain, application/json"):  # fmt: skip
        res = run({"add": {"json": ["x:1"]}}, {"Content-Type": content_type}, b"{}")
        assert json.loads(res.body) == {"x": "1"}, content_type


def test_body_over_the_buffer_limit_passes_through() -> None:
    handler = make_handler("response-transformer", {"add": {"json": ["x:1"]}})
    handler.buffer_limit = 10  # type: ignore[attr-defined]
    body = b'{"a": "' + b"x" * 100 + b'"}'
    res = run_phases(
        handler, FakeContext(), upstream=(200, JSON, body), chunks=[body[:8], body[8:50], body[50:]]
    )
    assert res.body == body


def test_header_only_handler_has_no_body_phase() -> None:
    header_only = make_handler("response-transformer", {"add": {"headers": ["a:1"]}})
    with_json = make_handler("response-transformer", {"add": {"json": ["a:1"]}})
    assert "body" not in type(header_only).__dict__
    assert type(header_only).__name__ == "Handler"
    assert "body" in type(with_json).__dict__


def test_per_request_cost() -> None:
    handler = make_handler(
        "response-transformer", {"add": {"headers": ["x-a:1"]}, "remove": {"headers": ["server"]}}
    )
    ctx = FakeContext()
    ctx.start_response(200, [b"Server: x\r\n"])
    assert ctx.phase == Phase.RESPONSE
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        handler.response(ctx)
    assert (time.perf_counter() - started) / n * 1e6 < 500
