"""The upstream request head with the real router, whose matches are remembered per request
head and carry what forwarding worked out (``dispatch.UpstreamPlan``): requests that share a
match must still get their own query, host and forwarding headers, and a match used with
another service must not keep the previous service's path or Host."""

from __future__ import annotations

from engine_kit import Client, TestUpstream, make_service, proxy, run

from meshgate import snapshot
from meshgate.proxy.compiled import CompiledConfig, CompiledRoute
from meshgate.proxy.http.heads import VIA_LINE
from meshgate.proxy.router import Router


def _route(route_id: str, path: str, svc_id: str, **fields: object) -> snapshot.Route:
    return snapshot.Route(
        id=route_id, name=route_id, paths=(path,), protocols=("http", "https"),
        service=svc_id, **fields,
    )  # type: ignore[arg-type]  # fmt: skip


def test_requests_sharing_a_match_get_their_own_head() -> None:
    async def main() -> None:
        up = await TestUpstream().start()
        svc = make_service([up.port], host_header="one.internal")
        svc.path = "/base"
        other = make_service([up.port], name="other", host_header="two.internal")
        other.path = "/other"
        api = CompiledRoute(
            _route("api", "/api", svc.service.id, strip_path=True), svc, False, False
        )
        keep = CompiledRoute(
            _route("keep", "/keep", svc.service.id, strip_path=False, preserve_host=True),
            svc, False, False,
        )  # fmt: skip
        router = Router.build([(api.route, api), (keep.route, keep)])
        config = CompiledConfig(version="v1", router=router)
        async with proxy(config) as p:
            client = await Client.connect(p.port)

            async def seen(raw: bytes) -> dict[str, str]:
                await client.send(raw)
                resp = await client.response()
                assert resp.status == 200
                echoed = resp.json()
                headers = {k.lower(): v for k, v in echoed["headers"]}
                headers[":url"] = echoed["url"]
                return headers

            first = await seen(b"GET /api/x?q=1 HTTP/1.1\r\nHost: a.test:81\r\nX-Keep: 1\r\n\r\n")
            assert up.raw[0] == (
                b"GET /base/x?q=1 HTTP/1.1\r\nHost: one.internal\r\nX-Keep: 1\r\n"
                b"X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
                b"X-Forwarded-Port: %d\r\nX-Real-IP: 127.0.0.1\r\n"
                b"X-Forwarded-Host: a.test\r\nX-Forwarded-Path: /api/x\r\n"
                b"X-Forwarded-Prefix: /api\r\n" % p.port + VIA_LINE + b"\r\n"
            )
            assert first[":url"] == "/base/x?q=1"
            second = await seen(b"GET /api/x?q=2 HTTP/1.1\r\nHost: a.test:81\r\n\r\n")
            assert second[":url"] == "/base/x?q=2"
            assert "x-keep" not in second
            third = await seen(b"GET /api/x HTTP/1.1\r\nHost: a.test:81\r\n\r\n")
            assert third[":url"] == "/base/x"
            assert third["host"] == "one.internal"
            assert third["x-forwarded-prefix"] == "/api"
            # the same head (so the same remembered match), another service
            api.service = other
            moved = await seen(b"GET /api/x HTTP/1.1\r\nHost: a.test:81\r\n\r\n")
            assert (moved[":url"], moved["host"]) == ("/other/x", "two.internal")
            api.service = svc
            back = await seen(b"GET /api/x?z HTTP/1.1\r\nHost: a.test:81\r\n\r\n")
            assert (back[":url"], back["host"]) == ("/base/x?z", "one.internal")
            # preserve_host: each request's own Host; no prefix without strip_path
            for host in (b"b.test", b"c.test:8080", b"[::1]:9"):
                kept = await seen(b"GET /keep/y HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
                assert kept["host"] == host.decode()
                assert kept[":url"] == "/base/keep/y"
                assert "x-forwarded-prefix" not in kept
            assert kept["x-forwarded-host"] == "[::1]"
            client.close()

    run(main())
