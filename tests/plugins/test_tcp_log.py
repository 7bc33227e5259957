"""tcp-log against a local TCP receiver: config rules, JSON lines over one connection, TLS,
receiver down (drop-and-count, requests unaffected), flush on stop."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import pytest
import trustme
from logsink_kit import TcpSink, await_until, closed_port

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, arun_phases, make_handler


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({"port": 1}, "config.host", "Field required"),
        ({"host": "h"}, "config.port", "Field required"),
        ({"host": "h", "port": 70000}, "config.port", "less than or equal to 65535"),
        ({"host": "h:80", "port": 1}, "config.host", "must not have a port"),
        ({"host": "bad host", "port": 1}, "config.host", "invalid value: bad host"),
        ({"host": "h", "port": 1, "custom_fields_by_lua": {"a": "b"}}, "config.custom_fields_by_lua",
         "not supported"),
    ],
)  # fmt: skip
def test_config_errors(config: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("tcp-log", config)
    got = caught.value.to_fields()
    assert path in got, got
    assert message in got[path], got


def test_defaults() -> None:
    got = validate_plugin_config("tcp-log", {"host": "127.0.0.1", "port": 9})
    assert got["timeout"] == 10000
    assert got["keepalive"] == 60000
    assert got["tls"] is False


async def _log(handler: Any, count: int) -> None:
    for i in range(count):
        await arun_phases(handler, FakeContext("GET", f"/t/{i}"))


def test_json_lines_over_one_connection() -> None:
    sink = TcpSink()
    try:

        async def scenario() -> None:
            handler = make_handler("tcp-log", {"host": "127.0.0.1", "port": sink.port})
            await handler.start()
            await _log(handler, 3)
            await await_until(lambda: len(sink.lines()) == 3)
            await _log(handler, 2)
            await handler.stop()
            await await_until(lambda: len(sink.lines()) == 5)

        asyncio.run(scenario())
        uris = [json.loads(line)["request"]["uri"] for line in sink.lines()]
        assert uris == [f"/t/{i}" for i in (0, 1, 2, 0, 1)]
        assert sink.connections == 1  # kept alive
    finally:
        sink.close()


def test_tls() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("logs.test").configure_cert(server_context)
    sink = TcpSink(server_context)
    try:

        async def scenario() -> None:
            handler = make_handler("tcp-log", {"host": "127.0.0.1", "port": sink.port, "tls": True,
                                               "tls_sni": "logs.test"})  # fmt: skip
            await handler.start()
            await _log(handler, 2)
            await handler.stop()
            await await_until(lambda: len(sink.lines()) == 2)

        asyncio.run(scenario())
        assert json.loads(sink.lines()[1])["request"]["uri"] == "/t/1"
    finally:
        sink.close()


def test_receiver_down_drops_and_counts() -> None:
    async def scenario() -> Any:
        handler = make_handler("tcp-log", {"host": "127.0.0.1", "port": closed_port()})
        queue = handler.queue  # type: ignore[attr-defined]
        queue.limits = type(queue.limits)(max_batch_size=5, max_entries=10, max_retry_time=0.1)
        await handler.start()
        await _log(handler, 40)
        await await_until(lambda: queue.dropped + queue.failed == 40)
        await handler.stop()
        return queue

    queue = asyncio.run(scenario())
    assert queue.dropped >= 30
    assert queue.sent == 0
