"""The two bundled plugins that prove the runtime: request-termination and correlation-id."""

from __future__ import annotations

import json
import re

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.proxy.filters.testing_http import live_gateway, plugin


def terminate(
    config: dict[str, object], ctx: FakeContext | None = None
) -> tuple[int, bytes, dict[str, list[str]]]:
    result = run_phases(make_handler("request-termination", config), ctx or FakeContext())
    return result.status, result.body, result.headers


def test_request_termination_default_and_message() -> None:
    status, body, headers = terminate({})
    assert status == 503
    assert json.loads(body) == {"message": "The upstream server is currently unavailable"}
    assert headers["content-type"] == ["application/json; charset=utf-8"]
    assert terminate({"status_code": 403, "message": "go away"})[:2] == (
        403,
        b'{"message":"go away"}',
    )
    assert json.loads(terminate({"status_code": 404})[1]) == {"message": "Not found"}


def test_request_termination_raw_body_with_content_type() -> None:
    status, body, headers = terminate(
        {"status_code": 200, "body": "<h1>down</h1>", "content_type": "text/html"}
    )
    assert (status, body, headers["content-type"]) == (200, b"<h1>down</h1>", ["text/html"])


def test_request_termination_trigger_header_or_query() -> None:
    handler = make_handler("request-termination", {"trigger": "X-Stop"})
    assert run_phases(handler, FakeContext()).exit is None
    assert run_phases(handler, FakeContext(headers={"x-stop": "1"})).status == 503
    assert run_phases(handler, FakeContext("GET", "/?X-Stop")).status == 503


def test_request_termination_echo() -> None:
    ctx = FakeContext(
        "POST", "/e?q=1", headers={"Content-Type": "application/json"}, body=b'{"k": "v"}'
    )
    status, body, _ = terminate({"status_code": 200, "echo": True}, ctx)
    echoed = json.loads(body)
    assert status == 200
    assert echoed["request"]["body"] == {"k": "v"}
    assert echoed["request"]["raw_body"] == '{"k": "v"}'
    assert echoed["request"]["query"] == {"q": "1"}
    assert echoed["request"]["method"] == "POST"
    assert set(echoed["kong"]) == {"node_id", "worker_pid", "hostname"}


@pytest.mark.parametrize(
    "config",
    [
        {"message": "m", "body": "b"},
        {"content_type": "text/plain"},
        {"echo": True, "body": "b"},
        {"status_code": 600},
        {"trigger": "bad header"},
    ],
)
def test_request_termination_config_checks(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_handler("request-termination", config)


def test_correlation_id_generators() -> None:
    for generator, pattern in (
        ("uuid", r"[0-9a-f-]{36}"),
        ("uuid#counter", r"[0-9a-f-]{36}#\d+"),
        ("tracker", r"example\.test-8000-\d+-\d+-1-\d+\.\d{3}"),
    ):
        ctx = FakeContext()
        run_phases(make_handler("correlation-id", {"generator": generator}), ctx)
        value = ctx.upstream_headers()["kong-request-id"][0]
        assert re.fullmatch(pattern, value), (generator, value)
        assert ctx.logged is not None
        assert ctx.logged["correlation_id"] == value


def test_correlation_id_keeps_an_incoming_id_and_echoes_it() -> None:
    handler = make_handler("correlation-id", {"header_name": "X-Req", "echo_downstream": True})
    ctx = FakeContext(headers={"X-Req": "given"})
    result = run_phases(handler, ctx)
    assert ctx.upstream_headers()["x-req"] == ["given"]
    assert result.headers["x-req"] == ["given"]
    quiet = FakeContext()
    result = run_phases(make_handler("correlation-id"), quiet)
    assert "kong-request-id" not in result.headers


def test_counter_ids_are_unique_across_requests() -> None:
    handler = make_handler("correlation-id")
    seen = set()
    for _ in range(50):
        ctx = FakeContext()
        run_phases(handler, ctx)
        seen.add(ctx.upstream_headers()["kong-request-id"][0])
    assert len(seen) == 50


def test_both_over_http() -> None:
    plugins = [
        plugin("correlation-id", {"echo_downstream": True}),
        plugin("request-termination", {"status_code": 403, "trigger": "X-Block"}, service="s1"),
    ]
    with live_gateway(plugins=plugins) as gw:
        ok = gw.request("GET", "/r1")
        assert ok.status == 200
        assert ok.json()["headers"]["kong-request-id"] == ok.header("Kong-Request-ID")
        blocked = gw.request("GET", "/r2", headers={"X-Block": "1"})
        assert blocked.status == 403
        assert blocked.json() == {"message": "Forbidden"}
        assert blocked.header("Kong-Request-ID")
        assert gw.request("GET", "/r3", headers={"X-Block": "1"}).status == 200  # service s2
