"""Atomic reload, graceful drain, the default access log, and a real client (curl)."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil

import pytest
from engine_kit import (
    Client,
    Seen,
    TestUpstream,
    UpstreamConn,
    echo_handler,
    get,
    make_config,
    make_route,
    make_service,
    proxy,
    request,
    run,
)

from meshgate.proxy.http.serve import drain


def _slow_handler(delay: float):  # type: ignore[no-untyped-def]
    async def handler(conn: UpstreamConn, seen: Seen) -> None:
        if seen.url.startswith("/slow"):
            await asyncio.sleep(delay)
        echo_handler(conn, seen)

    return handler


def test_reload_applies_to_the_next_request_in_flight_ones_finish_on_the_old() -> None:
    async def main() -> None:
        old = await TestUpstream("old", handler=_slow_handler(0.3)).start()
        new = await TestUpstream("new").start()
        old_config = make_config([("/", make_route(make_service([old.port])))], "v1")
        new_config = make_config([("/", make_route(make_service([new.port], name="n")))], "v2")
        async with proxy(old_config) as p:
            client = await Client.connect(p.port)
            await client.send(get("/slow") + get("/after"))  # pipelined on one connection
            other = asyncio.ensure_future(request(p.port, get("/slow-too")))
            await old.wait_requests(2)  # both slow requests are at the old upstream
            p.state.config = new_config  # the reload
            first = await client.response()
            second = await client.response()
            assert first.json()["name"] == "old"  # was in flight: finished on the old config
            assert second.json()["name"] == "new"  # routed after the swap
            assert (await other).json()["name"] == "old"
            assert (await request(p.port, get("/x"))).json()["name"] == "new"

    run(main())


def test_drain_finishes_in_flight_closes_idle_and_stops_accepting() -> None:
    async def main() -> None:
        up = await TestUpstream(handler=_slow_handler(0.3)).start()
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            idle = await Client.connect(p.port)
            await idle.send(get("/fast"))
            assert (await idle.response()).status == 200
            busy = await Client.connect(p.port)
            await busy.send(get("/slow"))
            await up.wait_requests(2)  # the slow one is at the upstream
            port = p.port
            draining = asyncio.ensure_future(drain([p.server], 5.0))
            assert await idle.closed()  # idle keep-alive connection closed at once
            resp = await busy.response()
            assert resp.status == 200
            assert resp.header("connection") == "close"
            await asyncio.wait_for(draining, 3)
            with pytest.raises(ConnectionRefusedError):
                await Client.connect(port)

    run(main())


def test_drain_timeout_aborts_what_is_left() -> None:
    async def main() -> None:
        up = await TestUpstream(handler=lambda conn, seen: None).start()  # never answers
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            client = await Client.connect(p.port)
            await client.send(get())
            await up.wait_requests(1)
            started = asyncio.get_running_loop().time()
            await drain([p.server], 0.3)
            assert 0.25 < asyncio.get_running_loop().time() - started < 2
            assert await client.closed()

    run(main())


def test_default_access_log_writes_json_lines(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            object.__setattr__(p.settings, "on_access", None)
            with caplog.at_level(logging.INFO, logger="meshgate.access"):
                assert (await request(p.port, get("/logged?q=1"))).status == 200
                assert (await request(p.port, get("/", host="x"))).status == 200
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "meshgate.access"]
        assert [line["path"] for line in lines] == ["/logged", "/"]
        assert lines[0]["status"] == 200
        assert lines[0]["service_name"] == "svc"
        assert lines[0]["latency_total_ms"] >= lines[0]["latency_upstream_ms"] >= 0

    run(main())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_through_the_proxy() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            url = f"http://127.0.0.1:{p.port}/curl/path?x=1"
            proc = await asyncio.create_subprocess_exec(
                "curl", "-sS", "-i", "--http1.1", "-H", "X-From: curl", "--data-binary",
                "payload", url, url,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await proc.communicate()
            assert proc.returncode == 0, err
            text = out.decode()
            assert text.count("HTTP/1.1 200 OK") == 2
            assert "Via: 1.1 meshgate/" in text
            assert up.connections == 1  # curl reused its connection; so did the proxy
            assert [r.body for r in up.requests] == [b"payload", b"payload"]
            assert dict(up.requests[0].headers)["X-From"] == "curl"

    run(main())
