"""The plugin runtime on real HTTP: scoping, phases, async plugins, exits, errors, bodies."""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import Callable

import pytest
from runtime_handlers import ALL, FUTURE_WAITS, LOGGED, TASKS_AT_SETTLE

from meshgate.errors import ConfigError
from meshgate.proxy.filters.testing_http import LiveGateway, live_gateway, plugin
from meshgate.snapshot import Consumer

ALICE = Consumer(id="c-alice", username="alice", custom_id="A1")
BOB = Consumer(id="c-bob", username="bob")


def gateway(**kwargs: object) -> object:
    return live_gateway(handlers=ALL, consumers=[ALICE, BOB], **kwargs)  # type: ignore[arg-type]


def wait_until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def upstream_tag(gw: LiveGateway, path: str, **headers: str) -> str | None:
    res = gw.request("GET", path, headers=headers)
    assert res.status == 200, res.body
    tag: str | None = res.json()["headers"].get("x-tag")
    return tag


def test_scopes_pick_the_most_specific_instance() -> None:
    plugins = [
        plugin("who-auth"),
        plugin("tag", {"value": "global"}),
        plugin("tag", {"value": "service-s2"}, service="s2"),
        plugin("tag", {"value": "route-r2"}, route="r2"),
        plugin("tag", {"value": "consumer-alice"}, consumer="c-alice"),
        plugin("tag", {"value": "route-r2+alice"}, route="r2", consumer="c-alice"),
    ]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        assert upstream_tag(gw, "/r1") == "global"
        assert upstream_tag(gw, "/r3") == "service-s2"
        assert upstream_tag(gw, "/r2") == "route-r2"
        # consumer scope beats global and service, route+consumer beats route
        assert upstream_tag(gw, "/r1", **{"X-User": "alice"}) == "consumer-alice"
        assert upstream_tag(gw, "/r3", **{"X-User": "alice"}) == "consumer-alice"
        assert upstream_tag(gw, "/r2", **{"X-User": "alice"}) == "route-r2+alice"
        assert upstream_tag(gw, "/r2", **{"X-User": "bob"}) == "route-r2"


def test_authenticate_sets_kong_consumer_headers() -> None:
    with gateway(plugins=[plugin("who-auth")]) as gw:  # type: ignore[attr-defined]
        seen = gw.request("GET", "/r1", headers={"X-User": "alice"}).json()["headers"]
        assert seen["x-consumer-id"] == "c-alice"
        assert seen["x-consumer-custom-id"] == "A1"
        assert seen["x-consumer-username"] == "alice"
        assert seen["x-credential-identifier"] == "cred-alice"
        assert "x-anonymous-consumer" not in seen
        denied = gw.request("GET", "/r1", headers={"X-User": "mallory"})
        assert denied.status == 401
        assert denied.json() == {"message": "Unauthorized"}


def test_disabled_and_protocol_filtered_instances() -> None:
    plugins = [
        plugin("tag", {"value": "global"}),
        plugin("tag", {"value": "off"}, route="r1", enabled=False),
        plugin("tag", {"value": "https-only"}, route="r2", protocols=("https",)),
    ]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        assert upstream_tag(gw, "/r1") == "global"  # a disabled instance shadows nothing
        assert upstream_tag(gw, "/r2") is None  # chosen instance does not run on http


def test_exception_in_access_answers_500_and_connection_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with gateway(plugins=[plugin("boom", route="r1")]) as gw:  # type: ignore[attr-defined]
        with caplog.at_level(logging.ERROR, logger="meshgate.plugins"):
            res = gw.request("GET", "/r1")
        assert res.status == 500
        assert res.json() == {"message": "An unexpected error occurred"}
        assert any("boom" in r.getMessage() and "r1" in r.getMessage() for r in caplog.records)
        conn = gw._conn
        again = gw.request("GET", "/r2")
        assert again.status == 200
        assert gw._conn is conn
        assert conn is not None
        assert gw.request("GET", "/r1").status == 500


@pytest.mark.parametrize("phase", ["response", "body"])
def test_exception_in_response_or_body_phase_answers_500(phase: str) -> None:
    with gateway(plugins=[plugin("boom", {"phase": phase}, route="r1")]) as gw:  # type: ignore[attr-defined]
        res = gw.request("GET", "/r1")
        assert res.status == 500
        assert gw.request("GET", "/r2").status == 200
        assert gw.request("GET", "/r1", new_connection=True).status == 500
        assert gw.request("GET", "/r2").status == 200


def test_exception_in_log_phase_does_not_touch_the_response() -> None:
    with gateway(plugins=[plugin("boom", {"phase": "log"})]) as gw:  # type: ignore[attr-defined]
        assert gw.request("GET", "/r1").status == 200
        assert gw.request("GET", "/r1").status == 200


def test_async_plugin_is_awaited_and_can_exit() -> None:
    plugins = [
        plugin("slow", {"delay": 0.02}, route="r1"),
        plugin("slow", {"deny": True}, route="r2"),
        plugin("tag", {"value": "after-slow"}),  # lower priority: runs after the await
    ]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        seen = gw.request("GET", "/r1").json()["headers"]
        assert seen["x-slow"] == "done"
        assert seen["x-tag"] == "after-slow"
        denied = gw.request("GET", "/r2")
        assert denied.status == 403
        assert denied.json() == {"message": "slowly denied"}
        assert gw.request("GET", "/r1").status == 200


def test_a_plugin_waiting_on_a_future_carries_on_without_a_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins = [
        plugin("future-wait", route="r1"),
        plugin("future-wait", {"outcome": "exit"}, route="r2"),
        plugin("future-wait", {"outcome": "error"}, route="r3"),
        plugin("tag", {"value": "after-future"}),  # lower priority: runs after the wait
    ]
    TASKS_AT_SETTLE.clear()
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        assert upstream_tag(gw, "/r1") == "after-future"
        exited = gw.request("GET", "/r2")
        assert (exited.status, exited.json()) == (418, {"message": "from a future"})
        with caplog.at_level(logging.ERROR, logger="meshgate.plugins"):
            failed = gw.request("GET", "/r3")
        assert failed.status == 500
        logged = [r for r in caplog.records if "future-wait" in r.getMessage()]
        assert logged
        assert "r3" in logged[0].getMessage()
        assert logged[0].exc_info is not None
        assert "future boom" in str(logged[0].exc_info[1])
        assert upstream_tag(gw, "/r1") == "after-future"  # the connection lives on
    assert len(TASKS_AT_SETTLE) == 4
    assert not any(name.startswith("plugin ") for names in TASKS_AT_SETTLE for name in names)


def test_a_future_waited_on_is_cancelled_when_the_client_leaves() -> None:
    plugins = [plugin("future-wait", {"outcome": "never"}, route="r1")]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        FUTURE_WAITS.clear()
        with socket.create_connection(("127.0.0.1", gw.port)) as sock:
            sock.sendall(b"GET /r1 HTTP/1.1\r\nHost: t\r\n\r\n")
            wait_until(lambda: len(FUTURE_WAITS) == 1)
        wait_until(FUTURE_WAITS[0].cancelled)
        assert gw.request("GET", "/r2").status == 200


def test_async_plugin_with_a_request_body() -> None:
    with gateway(plugins=[plugin("slow", {"delay": 0.02})]) as gw:  # type: ignore[attr-defined]
        res = gw.request("POST", "/r1", body=b"x" * 100_000)
        assert res.status == 200
        assert res.json()["body_bytes"] == 100_000
        chunked = gw.raw(
            b"POST /r1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
            b"\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        assert chunked.startswith(b"HTTP/1.1 200")
        assert b'"body_bytes": 5' in chunked


def test_exit_still_runs_response_and_log_phases() -> None:
    LOGGED.clear()
    plugins = [
        plugin("correlation-id", {"echo_downstream": True}),
        plugin("request-termination", {"status_code": 418, "message": "tea"}, route="r1"),
        plugin("logger"),
    ]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        res = gw.request("GET", "/r1?a=1&a=2&b")
        assert res.status == 418
        assert res.json() == {"message": "tea"}
        assert res.header("Kong-Request-ID")
        wait_until(lambda: len(LOGGED) == 1)
        entry = LOGGED[0]
        assert entry["response"]["status"] == 418
        assert entry["request"]["querystring"] == {"a": ["1", "2"], "b": True}
        assert entry["route"]["id"] == "r1"
        assert entry["correlation_id"] == res.header("Kong-Request-ID")
        assert entry["upstream_status"] is None
        proxied = gw.request("GET", "/r2", headers={"Authorization": "secret"})
        wait_until(lambda: len(LOGGED) == 2)
        entry = LOGGED[1]
        assert entry["response"]["status"] == 200
        assert entry["upstream_status"] == 200
        assert entry["request"]["headers"]["authorization"] == "REDACTED"
        assert entry["response"]["headers"]["kong-request-id"] == proxied.header("Kong-Request-ID")
        assert entry["tries"]
        assert entry["tries"][0]["port"] == gw.upstream_port
        assert set(entry["latencies"]) == {"request", "kong", "proxy", "receive"}


def test_route_without_service_answered_by_a_plugin() -> None:
    plugins = [
        plugin(
            "request-termination",
            {"status_code": 200, "body": "ok", "content_type": "text/plain"},
            route="r0",
        )
    ]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        res = gw.request("GET", "/none")
        assert (res.status, res.body, res.header("Content-Type")) == (200, b"ok", "text/plain")


def test_body_filter_changes_length_and_response_is_chunked() -> None:
    with gateway(plugins=[plugin("upper", route="r1")]) as gw:  # type: ignore[attr-defined]
        res = gw.request("GET", "/r1/abc")
        assert res.status == 200
        assert res.header("Content-Length") is None
        assert res.header("Transfer-Encoding") == "chunked"
        assert res.body.endswith(b"!")
        assert b'"URL": "/R1/ABC"' in res.body
        assert gw.request("GET", "/r1").status == 200  # keep-alive still fine


def test_request_rewrites_reach_the_upstream() -> None:
    plugins = [plugin("rewrite", {"path": "/other/p", "query": "x=1", "method": "PUT"}, route="r1")]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        seen = gw.request("GET", "/r1/original?y=2").json()
        assert seen["url"] == "/other/p?x=1"
        assert seen["method"] == "PUT"


def test_needs_body_plugin_reads_and_replaces_the_body() -> None:
    with gateway(plugins=[plugin("rewrite", {"body_prefix": "pre-"}, route="r1")]) as gw:  # type: ignore[attr-defined]
        seen = gw.request("POST", "/r1", body=b"abc").json()
        assert seen["body_bytes"] == 7
        assert seen["headers"]["content-length"] == "7"
        chunked = gw.raw(
            b"POST /r1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
            b"\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        assert b'"body_bytes": 9' in chunked
        too_big = gw.request("POST", "/r1", body=b"z" * 5000)
        assert too_big.status == 413
        assert gw.request("GET", "/r2", new_connection=True).status == 200


def test_response_header_set_in_access_is_sent() -> None:
    with gateway(plugins=[plugin("tag", {"value": "v"})]) as gw:  # type: ignore[attr-defined]
        assert gw.request("GET", "/r1").header("X-Tag-Seen") == "v"


def test_ordering_changes_access_order_over_http() -> None:
    # each plugin adds an X-Order line; the echo upstream reports the last one
    base = [plugin("order-a"), plugin("order-b"), plugin("order-c")]
    with gateway(plugins=base) as gw:  # type: ignore[attr-defined]
        assert gw.request("GET", "/r1").json()["headers"]["x-order"] == "order-c"
        reordered = [
            plugin("order-a"),
            plugin("order-b"),
            plugin("order-c", ordering={"before": {"access": ("order-a",)}}),
        ]
        gw.apply(reordered, [ALICE, BOB])
        assert gw.request("GET", "/r1").json()["headers"]["x-order"] == "order-b"


def test_invalid_plugin_config_keeps_the_running_config() -> None:
    with gateway(plugins=[plugin("tag", {"value": "v1"})]) as gw:  # type: ignore[attr-defined]
        with pytest.raises(ConfigError) as error:
            gw.apply([plugin("tag", {"value": 3}), plugin("nope")], [])
        fields = error.value.to_fields()
        assert any(k.endswith(".config.value") for k in fields)
        assert any("plugin 'nope' not enabled" in v for v in fields.values())
        assert upstream_tag(gw, "/r1") == "v1"


def test_pipelined_requests_through_async_and_exiting_plugins_stay_in_order() -> None:
    plugins = [
        plugin("slow", {"delay": 0.02}, route="r1"),
        plugin("request-termination", {"status_code": 418, "message": "tea"}, route="r2"),
        plugin("rewrite", {"body_prefix": "p-"}, route="r3"),
    ]
    with gateway(plugins=plugins) as gw:  # type: ignore[attr-defined]
        raw = gw.raw(
            b"GET /r1/a HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /r3/b HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
            b"HEAD /r2/c HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /r2/d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)
        assert statuses == [b"200", b"200", b"418", b"418"]
        assert raw.index(b'"url": "/r1/a"') < raw.index(b'"url": "/r3/b"')
        assert b'"body_bytes": 5' in raw
        assert raw.endswith(b'{"message":"tea"}')
        assert raw.count(b'{"message":"tea"}') == 1  # HEAD got no body


def test_plugin_state_survives_reload_only_through_node_resources() -> None:
    with gateway(plugins=[plugin("tag", {"value": "one"})]) as gw:  # type: ignore[attr-defined]
        assert upstream_tag(gw, "/r1") == "one"
        gw.apply([plugin("tag", {"value": "two"})], [ALICE, BOB])
        assert upstream_tag(gw, "/r1") == "two"
        gw.apply([], [ALICE, BOB])
        assert upstream_tag(gw, "/r1") is None
