"""http-log against a local HTTP receiver: config rules, one record per request or JSON
arrays per batch, headers and Basic auth from user info, a failing or absent receiver
(drop-and-count, the request path unaffected), flush on stop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from logsink_kit import HttpSink, await_until, closed_port

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, arun_phases, make_handler


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    receiver = HttpSink()
    yield receiver
    receiver.close()


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({}, "config.http_endpoint", "Field required"),
        ({"http_endpoint": "no-scheme"}, "config.http_endpoint", "missing host in url"),
        ({"http_endpoint": "ftp://h/x"}, "config.http_endpoint", "unsupported scheme"),
        ({"http_endpoint": "http://h", "method": "GET"}, "config.method", "expected one of: POST, PUT, PATCH"),
        ({"http_endpoint": "http://h", "content_type": "text/plain"}, "config.content_type", "expected one of"),
        ({"http_endpoint": "http://h", "headers": {"Host": "x"}}, "config.headers", "cannot contain 'Host' header"),
        ({"http_endpoint": "http://h", "headers": {"content-length": "1"}}, "config.headers",
         "cannot contain 'Content-Length' header"),
        ({"http_endpoint": "http://h", "headers": {"a b": "1"}}, "config.headers", "bad header name 'a b'"),
        ({"http_endpoint": "http://u:p@h", "headers": {"Authorization": "x"}}, "config",
         "specifying both an 'Authorization' header and user info"),
        ({"http_endpoint": "http://h", "queue": {"max_batch_size": 0}}, "config.queue.max_batch_size", ""),
        ({"http_endpoint": "http://h", "queue": {"concurrency_limit": 2}}, "config.queue.concurrency_limit",
         "expected one of: -1, 1"),
        ({"http_endpoint": "http://h", "custom_fields_by_lua": {"a": "return 1"}}, "config.custom_fields_by_lua",
         "not supported"),
    ],
)  # fmt: skip
def test_config_errors(config: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("http-log", config)
    got = caught.value.to_fields()
    assert path in got, got
    assert message in got[path], got


def test_defaults_are_kongs() -> None:
    got = validate_plugin_config("http-log", {"http_endpoint": "http://127.0.0.1/x"})
    assert got["method"] == "POST"
    assert got["content_type"] == "application/json"
    assert got["timeout"] == 10000
    assert got["keepalive"] == 60000
    assert got["queue"]["max_batch_size"] == 1
    assert got["queue"]["max_entries"] == 10000
    assert got["queue"]["max_coalescing_delay"] == 1


async def _log_requests(handler: Any, count: int) -> None:
    for i in range(count):
        await arun_phases(handler, FakeContext("GET", f"/req/{i}", headers={"Authorization": "s3cret"}),
                          upstream=(201, {}, b"x"))  # fmt: skip


def test_one_record_per_request(sink: HttpSink) -> None:
    async def scenario() -> None:
        url = sink.url.replace("http://", "http://user:pw@")
        handler = make_handler("http-log", {"http_endpoint": url, "method": "PUT",
                                            "headers": {"X-Token": "t"}})  # fmt: skip
        await handler.start()
        await _log_requests(handler, 2)
        await await_until(lambda: len(sink.requests) == 2)
        await handler.stop()

    asyncio.run(scenario())
    method, path, headers, body = sink.requests[0]
    assert (method, path) == ("PUT", "/logs")
    assert headers["content-type"] == "application/json"
    assert headers["x-token"] == "t"
    assert headers["authorization"] == "Basic dXNlcjpwdw=="
    record = json.loads(body)
    assert record["request"]["uri"] == "/req/0"
    assert record["response"]["status"] == 201
    assert record["request"]["headers"]["authorization"] == "REDACTED"


def test_batches_are_json_arrays(sink: HttpSink) -> None:
    async def scenario() -> None:
        handler = make_handler("http-log", {"http_endpoint": sink.url,
                               "queue": {"max_batch_size": 3, "max_coalescing_delay": 5}})  # fmt: skip
        await handler.start()
        await _log_requests(handler, 6)
        await await_until(lambda: len(sink.requests) == 2)
        await handler.stop()

    asyncio.run(scenario())
    batches = [json.loads(body) for _, _, _, body in sink.requests]
    assert [len(b) for b in batches] == [3, 3]
    assert [r["request"]["uri"] for b in batches for r in b] == [f"/req/{i}" for i in range(6)]


def test_stop_flushes_what_is_queued(sink: HttpSink) -> None:
    async def scenario() -> None:
        handler = make_handler("http-log", {"http_endpoint": sink.url,
                               "queue": {"max_batch_size": 100, "max_coalescing_delay": 60}})  # fmt: skip
        await handler.start()
        await _log_requests(handler, 4)
        await asyncio.sleep(0.05)
        assert sink.requests == []  # still coalescing
        await handler.stop()

    asyncio.run(scenario())
    assert len(json.loads(sink.requests[0][3])) == 4


def test_receiver_down_drops_and_counts_without_blocking() -> None:
    async def scenario() -> Any:
        handler = make_handler("http-log", {
            "http_endpoint": f"http://127.0.0.1:{closed_port()}/x",
            "queue": {"max_entries": 5, "max_retry_time": 0.2, "initial_retry_delay": 0.01},
        })  # fmt: skip
        await handler.start()
        started = time.perf_counter()
        await _log_requests(handler, 30)
        elapsed = time.perf_counter() - started
        queue = handler.queue  # type: ignore[attr-defined]
        await await_until(lambda: queue.dropped + queue.failed == 30)
        await handler.stop()
        return queue, elapsed

    queue, elapsed = asyncio.run(scenario())
    assert queue.dropped >= 20  # the bounded queue refused them
    assert queue.sent == 0
    assert elapsed < 5  # the request path never waited on the receiver


def test_error_status_is_retried_then_dropped() -> None:
    failing = HttpSink(status=500)
    try:

        async def scenario() -> Any:
            handler = make_handler("http-log", {"http_endpoint": failing.url,
                                   "queue": {"max_retry_time": 0.3, "initial_retry_delay": 0.05}})  # fmt: skip
            await handler.start()
            await _log_requests(handler, 1)
            queue = handler.queue  # type: ignore[attr-defined]
            await await_until(lambda: queue.failed == 1)
            await handler.stop()

        asyncio.run(scenario())
        assert len(failing.requests) >= 2  # retried before giving up
    finally:
        failing.close()


def test_dropped_entries_are_counted_in_prometheus() -> None:
    from meshgate.plugins.prometheus.exposition import render_metrics

    async def scenario() -> None:
        handler = make_handler("http-log", {"http_endpoint": f"http://127.0.0.1:{closed_port()}/x",
                               "queue": {"max_entries": 1, "max_retry_time": -1}})  # fmt: skip
        await _log_requests(handler, 3)  # not started: the queue holds 1, drops 2

    asyncio.run(scenario())
    text = render_metrics()[0].decode()
    line = next(row for row in text.splitlines()
                if row.startswith("meshgate_log_entries_dropped_total") and 'plugin="http-log"' in row
                and 'reason="queue_full"' in row)  # fmt: skip
    assert float(line.rsplit(" ", 1)[1]) >= 2
