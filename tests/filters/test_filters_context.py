"""The request context: reads, recorded changes, phase checks, identity, exits, serializer."""

from __future__ import annotations

import asyncio
import json

import pytest

from meshgate.proxy.filters.api import Exit, Phase, PhaseError, PluginHandler, RequestContext
from meshgate.proxy.filters.testing import FakeContext, arun_phases, make_handler, run_phases
from meshgate.snapshot import Consumer, Route


def test_reads_are_decoded_lazily_and_case_insensitive() -> None:
    ctx = FakeContext(
        "post",
        "/a/b?x=1&x=2&flag",
        headers=[("X-Multi", "1"), ("x-multi", "2"), ("Content-Type", "text/plain")],
        host="Example.COM:8080",
        scheme="https",
        client_ip="10.1.2.3",
    )
    assert ctx.method == "POST"
    assert (ctx.scheme, ctx.host, ctx.port, ctx.path) == ("https", "example.com", 8443, "/a/b")
    assert ctx.raw_query == "x=1&x=2&flag"
    assert ctx.query() == {"x": ["1", "2"], "flag": [""]}
    assert ctx.header("X-MULTI") == "1"
    assert ctx.headers()["x-multi"] == ["1", "2"]
    assert ctx.client_ip == "10.1.2.3"


def test_header_before_any_table_reads_the_raw_head_like_the_table() -> None:
    pairs = [("X-Multi", "1 "), ("x-multi", "2"), ("Content-Type", "text/plain"), ("E", "")]
    fresh = FakeContext("GET", "/", headers=pairs)
    tabled = FakeContext("GET", "/", headers=pairs)
    tabled.headers()  # builds the table: header() then answers from it
    for name in ("x-multi", "X-MULTI", "content-type", "e", "missing", "X-Mültí"):
        assert fresh.header(name) == tabled.header(name)
    assert fresh.header("X-Multi") == "1"
    assert fresh.header("e") == ""
    assert fresh.header("missing") is None


def test_request_setters_are_visible_to_later_reads() -> None:
    ctx = FakeContext("GET", "/p?a=1", headers={"X-A": "1"})
    ctx.set_header("X-A", "2")
    ctx.add_header("X-A", "3")
    ctx.clear_header("Missing")
    ctx.set_raw_query("b=2")
    ctx.set_method("put")
    ctx.set_path("/new")
    assert ctx.headers()["x-a"] == ["2", "3"]
    assert ctx.query() == {"b": ["2"]}
    assert (ctx.method, ctx.upstream_path, ctx.upstream_query) == ("PUT", "/new", "b=2")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Bad", "a\r\nInjected: 1"),
        ("X-Bad", "nul\x00"),
        ("Bad Name", "v"),
        ("Content-Length", "1"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close"),
    ],
)
def test_hostile_or_engine_owned_headers_are_refused(name: str, value: str) -> None:
    ctx = FakeContext()
    with pytest.raises(ValueError, match="header"):
        ctx.set_header(name, value)
    with pytest.raises(ValueError, match="header"):
        ctx.set_response_header(name, value)


def test_bad_paths_queries_methods_are_refused() -> None:
    ctx = FakeContext()
    for bad in ("relative", "/a b", "/a\r\nX: 1", "/a?q"):
        with pytest.raises(ValueError, match="path"):
            ctx.set_path(bad)
    with pytest.raises(ValueError, match="query"):
        ctx.set_raw_query("a=1\r\n")
    with pytest.raises(ValueError, match="method"):
        ctx.set_method("GET /x")


@pytest.mark.parametrize("phase", [Phase.RESPONSE, Phase.BODY, Phase.LOG])
def test_request_changes_are_refused_after_access(phase: Phase) -> None:
    ctx = FakeContext(phase=phase)
    for call in (
        lambda: ctx.set_header("X", "1"),
        lambda: ctx.add_header("X", "1"),
        lambda: ctx.clear_header("X"),
        lambda: ctx.set_path("/x"),
        lambda: ctx.set_raw_query("x"),
        lambda: ctx.set_method("GET"),
        lambda: ctx.set_body(b""),
        lambda: ctx.authenticate(None, None),
    ):
        with pytest.raises(PhaseError):
            call()


def test_exit_is_refused_in_body_and_log_phases() -> None:
    for phase in (Phase.BODY, Phase.LOG):
        with pytest.raises(PhaseError):
            FakeContext(phase=phase).exit(403)
    with pytest.raises(PhaseError):
        FakeContext(phase=Phase.RESPONSE).set_body(b"")
    with pytest.raises(PhaseError):
        FakeContext(phase=Phase.BODY).set_response_header("X", "1")
    with pytest.raises(PhaseError):
        FakeContext(phase=Phase.ACCESS).serialize()


def test_exit_body_shapes() -> None:
    ctx = FakeContext()
    with pytest.raises(Exit) as caught:
        ctx.exit(401, "Unauthorized", {"WWW-Authenticate": 'Key realm="kong"'})
    assert caught.value.status == 401
    assert json.loads(caught.value.body or b"") == {"message": "Unauthorized"}
    assert ("Content-Type", "application/json; charset=utf-8") in caught.value.headers
    assert ("WWW-Authenticate", 'Key realm="kong"') in caught.value.headers
    with pytest.raises(Exit) as caught:
        ctx.exit(200, {"a": [1]})
    assert json.loads(caught.value.body or b"") == {"a": [1]}
    with pytest.raises(Exit) as caught:
        ctx.exit(204, b"raw", {"Content-Type": "text/plain"})
    assert caught.value.body == b"raw"
    assert caught.value.headers == [("Content-Type", "text/plain")]
    with pytest.raises(Exit) as caught:
        ctx.exit(204)
    assert caught.value.body is None
    with pytest.raises(ValueError, match="status"):
        ctx.exit(99)


def test_authenticate_sets_kong_headers() -> None:
    alice = Consumer(id="c1", username="alice", custom_id="A")
    ctx = FakeContext(headers={"X-Anonymous-Consumer": "true", "X-Consumer-Username": "spoof"})
    ctx.authenticate(alice, {"id": "k1"})
    headers = ctx.upstream_headers()
    assert headers["x-consumer-id"] == ["c1"]
    assert headers["x-consumer-custom-id"] == ["A"]
    assert headers["x-consumer-username"] == ["alice"]
    assert headers["x-credential-identifier"] == ["k1"]
    assert "x-anonymous-consumer" not in headers
    assert ctx.consumer is alice
    assert ctx.req.consumer_id == "c1"
    anonymous = Consumer(id="anon")
    ctx.authenticate(anonymous, None)
    headers = ctx.upstream_headers()
    assert headers["x-anonymous-consumer"] == ["true"]
    assert "x-credential-identifier" not in headers
    assert "x-consumer-username" not in headers


def test_body_needs_needs_body() -> None:
    ctx = FakeContext("POST", "/", body=b"data")
    with pytest.raises(PhaseError, match="needs_body"):
        ctx.raw_body()
    with pytest.raises(PhaseError, match="needs_body"):
        ctx.set_body(b"x")
    buffered = FakeContext("POST", "/", body=b"data", body_buffered=True)
    assert buffered.raw_body() == b"data"
    assert asyncio.run(buffered.body()) == b"data"
    with pytest.raises(Exit) as caught:
        buffered.raw_body(max_bytes=2)
    assert caught.value.status == 413
    buffered.set_body(b"new")
    assert buffered.forwarded_body == b"new"
    no_body = FakeContext("GET", "/")
    assert no_body.raw_body() == b""
    no_body.set_body(b"added")
    assert no_body.forwarded_body == b"added"


class _Phases(PluginHandler):
    name = "phases"
    PRIORITY = 10
    needs_body = True

    def rewrite(self, ctx: RequestContext) -> None:
        ctx.shared["seen"] = [ctx.phase]

    def access(self, ctx: RequestContext) -> None:
        ctx.shared["seen"].append(ctx.phase)
        ctx.shared["body"] = ctx.raw_body()
        ctx.set_response_header("X-From-Access", "1")

    def response(self, ctx: RequestContext) -> None:
        ctx.shared["seen"].append(ctx.phase)
        ctx.set_response_header("X-Status", str(ctx.status))
        ctx.clear_response_header("X-Drop")

    def body(self, ctx: RequestContext, chunk: bytes, eof: bool) -> bytes:
        return chunk[::-1]

    def log(self, ctx: RequestContext) -> None:
        ctx.shared["seen"].append(ctx.phase)
        ctx.shared["log"] = ctx.serialize()


class _PhasesConfig(_Phases):
    from meshgate.proxy.filters.api import PluginConfig as Config


def test_run_phases_walks_every_phase_in_order() -> None:
    handler = make_handler(_PhasesConfig)
    ctx = FakeContext("POST", "/x", body=b"in", route=Route(id="r9", paths=("/",)))
    result = run_phases(
        handler, ctx, upstream=(201, {"X-Drop": "1", "Content-Type": "text/plain"}, b"abc")
    )
    assert ctx.shared["seen"] == [Phase.REWRITE, Phase.ACCESS, Phase.RESPONSE, Phase.LOG]
    assert ctx.shared["body"] == b"in"
    assert result.status == 201
    assert result.body == b"cba"
    assert result.headers["x-from-access"] == ["1"]
    assert result.headers["x-status"] == ["201"]
    assert "x-drop" not in result.headers
    log = ctx.shared["log"]
    assert log["response"]["status"] == 201
    assert log["route"]["id"] == "r9"
    assert log["request"]["method"] == "POST"
    assert log["request"]["size"] > 0


class _Async(PluginHandler):
    from meshgate.proxy.filters.api import PluginConfig as Config

    name = "async"

    def access(self, ctx: RequestContext) -> object:
        async def later() -> None:
            await asyncio.sleep(0)
            ctx.exit(429, "API rate limit exceeded")

        return later()


def test_async_handlers_in_sync_and_async_tests() -> None:
    result = run_phases(make_handler(_Async), FakeContext())
    assert result.exit is not None
    assert result.status == 429

    async def inside_a_loop() -> int:
        res = await arun_phases(make_handler(_Async), FakeContext())
        return res.status

    assert asyncio.run(inside_a_loop()) == 429


def test_fake_stream_and_upgrade() -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        ctx = FakeContext("GET", "/", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
        out = ctx.stream(200, {"Content-Type": "text/event-stream"})
        await out.write(b"a")
        out.disconnect()
        with pytest.raises(ConnectionError):
            await out.write(b"b")
        pipe = ctx.upgrade({"Upgrade": "websocket"})
        pipe.feed(b"hi")
        return out.sent, await pipe.read()

    assert asyncio.run(scenario()) == ([b"a"], b"hi")
    with pytest.raises(PhaseError):
        FakeContext().upgrade()
    with pytest.raises(PhaseError):
        FakeContext(phase=Phase.LOG).stream(200)
