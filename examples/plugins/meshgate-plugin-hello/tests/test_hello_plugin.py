"""Tests of the hello plugin: unit tests with FakeContext, and real HTTP through a gateway."""

from __future__ import annotations

import pytest
from meshgate_plugin_hello.handler import Handler

from meshgate.errors import ConfigError
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.proxy.filters.testing_http import live_gateway, plugin


def test_greets_upstream_and_downstream() -> None:
    handler = make_handler(Handler, {"greeting": "Bonjour"})
    ctx = FakeContext("GET", "/", headers={"X-Name": "Ada"})
    result = run_phases(handler, ctx)
    assert ctx.upstream_headers()["x-hello"] == ["Bonjour, Ada"]
    assert result.headers["x-hello"] == ["Bonjour, Ada"]


def test_defaults_and_quiet_mode() -> None:
    ctx = FakeContext()
    result = run_phases(make_handler(Handler, {"echo_downstream": False}), ctx)
    assert ctx.upstream_headers()["x-hello"] == ["Hello, world"]
    assert "x-hello" not in result.headers


def test_waiting_greeting() -> None:
    ctx = FakeContext()
    run_phases(make_handler(Handler, {"delay_ms": 5}), ctx)
    assert ctx.upstream_headers()["x-hello"] == ["Hello, world"]


def test_counts_greetings_in_node_wide_state() -> None:
    shared: dict[str, object] = {}
    first = make_handler(Handler, node_resources=shared)
    second = make_handler(Handler, node_resources=shared)  # as after a config reload
    run_phases(first, FakeContext())
    run_phases(second, FakeContext())
    assert shared["hello.greetings"] == {"-": 2}


@pytest.mark.parametrize(
    "config",
    [{"greeting": ""}, {"greeting": "a\nb"}, {"name_header": "bad header"}, {"delay_ms": -1}],
)
def test_bad_config_is_refused_with_its_field(config: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as error:
        make_handler(Handler, config)
    (field,) = config
    assert f"config.{field}" in error.value.to_fields()


def test_over_http() -> None:
    with live_gateway(
        plugins=[plugin("hello", {"greeting": "Hi"}, route="r1")], handlers=[Handler]
    ) as gw:
        res = gw.request("GET", "/r1", headers={"X-Name": "Bob"})
        assert res.status == 200
        assert res.json()["headers"]["x-hello"] == "Hi, Bob"
        assert res.header("X-Hello") == "Hi, Bob"
        assert gw.request("GET", "/r2").header("X-Hello") is None
