"""opentelemetry: config rules, trace context extraction/injection (W3C, B3, B3 single,
Jaeger, OT), sampling, the trace id response header, and OTLP/JSON export to a fake
collector (bounded queue: collector down is drop-and-count)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from logsink_kit import HttpSink, await_until, closed_port

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, arun_phases, make_handler, run_phases
from meshgate.snapshot import Route

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
BASE = {"traces_endpoint": "http://127.0.0.1:9/v1/traces"}


@pytest.fixture
def collector() -> Iterator[HttpSink]:
    sink = HttpSink()
    yield sink
    sink.close()


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        ({}, "config", "at least one of these fields must be non-empty"),
        ({"traces_endpoint": "nohost"}, "config.traces_endpoint", "missing host in url"),
        ({**BASE, "sampling_rate": 1.5}, "config.sampling_rate", "less than or equal to 1"),
        ({**BASE, "header_type": "zipkin"}, "config.header_type", "expected one of: preserve"),
        ({**BASE, "propagation": {"extract": ["nope"]}}, "config.propagation.extract.0", "expected one of"),
        ({**BASE, "propagation": {"clear": ["bad header"]}}, "config.propagation.clear", "bad header name"),
        ({**BASE, "resource_attributes": {"k": ""}}, "config.resource_attributes", "required field missing"),
        ({**BASE, "headers": {"a b": "x"}}, "config.headers", "bad header name"),
    ],
)  # fmt: skip
def test_config_errors(config: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("opentelemetry", config)
    got = caught.value.to_fields()
    assert path in got, got
    assert message in got[path], got


def test_defaults_and_deprecated_endpoint() -> None:
    got = validate_plugin_config("opentelemetry", {"endpoint": "http://c:4318/v1/traces"})
    assert got["traces_endpoint"] == "http://c:4318/v1/traces"
    assert got["queue"]["max_batch_size"] == 200
    assert got["connect_timeout"] == 1000
    assert got["send_timeout"] == 5000
    assert got["header_type"] == "preserve"
    assert got["propagation"]["default_format"] == "w3c"


def access(config: dict[str, Any], headers: dict[str, str]) -> FakeContext:
    ctx = FakeContext("GET", "/", headers=headers)
    run_phases(make_handler("opentelemetry", {**BASE, **config}), ctx)
    return ctx


def test_w3c_parent_is_continued() -> None:
    ctx = access({}, {"traceparent": f"00-{TRACE}-{SPAN}-01"})
    version, trace, span, flags = ctx.upstream_headers()["traceparent"][0].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01")
    assert span != SPAN
    assert len(span) == 16


def test_unsampled_parent_stays_unsampled() -> None:
    ctx = access({}, {"traceparent": f"00-{TRACE}-{SPAN}-00"})
    assert ctx.upstream_headers()["traceparent"][0].endswith("-00")


@pytest.mark.parametrize(
    "value",
    ["garbage", f"00-{'0' * 32}-{SPAN}-01", f"ff-{TRACE}-{SPAN}-01", f"00-{TRACE}-{SPAN}",
     "00-" + "x" * 32 + f"-{SPAN}-01", "\x00" * 60],
)  # fmt: skip
def test_invalid_traceparent_starts_a_new_trace(value: str) -> None:
    ctx = access({}, {"traceparent": value})
    trace = ctx.upstream_headers()["traceparent"][0].split("-")[1]
    assert trace != TRACE
    assert len(trace) == 32


def test_preserve_injects_the_incoming_format() -> None:
    ctx = access({}, {"x-b3-traceid": TRACE, "x-b3-spanid": SPAN, "x-b3-sampled": "1"})
    up = ctx.upstream_headers()
    assert up["x-b3-traceid"] == [TRACE]
    assert up["x-b3-sampled"] == ["1"]
    assert up["x-b3-spanid"] != [SPAN]
    assert "traceparent" not in up


@pytest.mark.parametrize(
    ("headers", "fmt"),
    [
        ({"b3": f"{TRACE}-{SPAN}-1"}, "b3-single"),
        ({"uber-trace-id": f"{TRACE}:{SPAN}:0:01"}, "jaeger"),
        (
            {"ot-tracer-traceid": TRACE[16:], "ot-tracer-spanid": SPAN, "ot-tracer-sampled": "1"},
            "ot",
        ),
    ],
)
def test_other_formats_convert_to_w3c(headers: dict[str, str], fmt: str) -> None:
    ctx = access({"header_type": "w3c"}, headers)
    trace = ctx.upstream_headers()["traceparent"][0].split("-")[1]
    assert trace.lstrip("0") == (TRACE[16:] if fmt == "ot" else TRACE).lstrip("0")


def test_ignore_starts_fresh_and_propagation_clear() -> None:
    ctx = access({"header_type": "ignore", "propagation": {"clear": ["x-drop"]}},
                 {"traceparent": f"00-{TRACE}-{SPAN}-01", "x-drop": "1"})  # fmt: skip
    up = ctx.upstream_headers()
    assert TRACE not in up["traceparent"][0]
    assert "x-drop" not in up


def test_inject_several_formats() -> None:
    ctx = access({"propagation": {"extract": ["w3c"], "inject": ["w3c", "b3-single", "jaeger"]}},
                 {"traceparent": f"00-{TRACE}-{SPAN}-01"})  # fmt: skip
    up = ctx.upstream_headers()
    assert up["b3"][0].startswith(TRACE)
    assert up["uber-trace-id"][0].startswith(TRACE)


def test_trace_id_response_header() -> None:
    handler = make_handler("opentelemetry", {**BASE, "http_response_header_for_traceid": "x-trace"})
    res = run_phases(
        handler, FakeContext("GET", "/", headers={"traceparent": f"00-{TRACE}-{SPAN}-01"})
    )
    assert res.headers["x-trace"] == [TRACE]


def test_spans_are_exported_as_otlp_json(collector: HttpSink) -> None:
    config = {"traces_endpoint": collector.url, "resource_attributes": {"service.name": "edge"},
              "queue": {"max_coalescing_delay": 0.01}, "headers": {"x-api-key": "k"}}  # fmt: skip

    async def scenario() -> None:
        handler = make_handler("opentelemetry", config)
        await handler.start()
        ctx = FakeContext("GET", "/orders", headers={"traceparent": f"00-{TRACE}-{SPAN}-01"},
                          route=Route(id="r1", name="orders"))  # fmt: skip
        await arun_phases(handler, ctx, upstream=(503, {}, b""))
        await await_until(lambda: len(collector.requests) == 1)
        await handler.stop()

    asyncio.run(scenario())
    _, path, headers, body = collector.requests[0]
    assert path == "/logs"
    assert headers["content-type"] == "application/json"
    assert headers["x-api-key"] == "k"
    message = json.loads(body)
    resource = {a["key"]: a["value"] for a in message["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["service.name"] == {"stringValue": "edge"}
    spans = message["resourceSpans"][0]["scopeSpans"][0]["spans"]
    root = spans[0]
    assert root["traceId"] == TRACE
    assert root["parentSpanId"] == SPAN
    assert root["name"] == "kong"
    assert root["kind"] == 2
    assert int(root["endTimeUnixNano"]) >= int(root["startTimeUnixNano"]) > 0
    attrs = {a["key"]: a["value"] for a in root["attributes"]}
    assert attrs["http.status_code"] == {"intValue": "503"}
    assert attrs["kong.route.id"] == {"stringValue": "r1"}
    assert root["status"]["code"] == 2  # 5xx is an error


def test_sampling_rate_zero_exports_nothing(collector: HttpSink) -> None:
    async def scenario() -> None:
        handler = make_handler("opentelemetry", {"traces_endpoint": collector.url, "sampling_rate": 0,
                               "queue": {"max_coalescing_delay": 0}})  # fmt: skip
        await handler.start()
        ctx = FakeContext("GET", "/")
        await arun_phases(handler, ctx)
        assert ctx.upstream_headers()["traceparent"][0].endswith("-00")
        await handler.stop()

    asyncio.run(scenario())
    assert collector.requests == []


def test_collector_down_drops_and_counts() -> None:
    async def scenario() -> Any:
        handler = make_handler("opentelemetry", {
            "traces_endpoint": f"http://127.0.0.1:{closed_port()}/v1/traces",
            "queue": {"max_entries": 3, "max_retry_time": 0.1, "max_coalescing_delay": 0},
        })  # fmt: skip
        await handler.start()
        for _ in range(20):
            await arun_phases(handler, FakeContext("GET", "/"))
        queue = handler.queue  # type: ignore[attr-defined]
        await await_until(lambda: queue.dropped + queue.failed == 20)
        await handler.stop()
        return queue

    queue = asyncio.run(scenario())
    assert queue.dropped >= 15
    assert queue.sent == 0
