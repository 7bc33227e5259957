"""TLS on both sides (listener certificates follow the current config) and WebSocket splicing."""

from __future__ import annotations

import asyncio
import ssl

import trustme
from engine_kit import (
    Client,
    TestUpstream,
    get,
    make_config,
    make_route,
    make_service,
    proxy,
    run,
)
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve

from meshgate.proxy.http.serve import make_listener_ssl_context


def _server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    return context


def _client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_https_listener_serves_the_current_configs_certificate() -> None:
    async def main() -> None:
        ca = trustme.CA()
        up = await TestUpstream().start()
        svc = make_service([up.port])
        config = make_config([("/", make_route(svc, protocols=("https",)))])
        config.server_ssl_context = _server_context(ca, "secure.example")
        async with proxy(config, protocol="https") as p:
            client = await Client.connect(
                p.port, ssl=_client_context(ca), server_hostname="secure.example"
            )
            await client.send(get(host="secure.example"))
            resp = await client.response()
            assert resp.status == 200  # https-only route reached over TLS
            headers = {k.lower(): v for k, v in resp.json()["headers"]}
            assert headers["x-forwarded-proto"] == "https"
            # reload with another certificate: new handshakes see it
            other_ca = trustme.CA()
            new_config = make_config([("/", make_route(svc, protocols=("https",)))], "v2")
            new_config.server_ssl_context = _server_context(other_ca, "secure.example")
            p.state.config = new_config
            with_new = await Client.connect(
                p.port, ssl=_client_context(other_ca), server_hostname="secure.example"
            )
            await with_new.send(get(host="secure.example"))
            assert (await with_new.response()).status == 200
            try:
                await Client.connect(
                    p.port, ssl=_client_context(ca), server_hostname="secure.example"
                )
                raise AssertionError("the old certificate is still served")
            except ssl.SSLCertVerificationError:
                pass
            # the connection made before the reload keeps working
            await client.send(get(host="secure.example"))
            assert (await client.response()).status == 200

    run(main())


def test_https_listener_without_certificates_fails_handshakes() -> None:
    async def main() -> None:
        async with proxy(make_config([]), protocol="https") as p:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            try:
                await Client.connect(p.port, ssl=context, server_hostname="x.example")
                raise AssertionError("handshake succeeded without a certificate")
            except (ssl.SSLError, ConnectionError):
                pass
        assert make_listener_ssl_context is not None

    run(main())


def test_https_upstream_and_tls_errors() -> None:
    async def main() -> None:
        ca = trustme.CA()
        up = await TestUpstream().start(ssl=_server_context(ca, "upstream.example"))
        good = make_service(
            [up.port], ssl_context=_client_context(ca), server_hostname="upstream.example"
        )
        bad = make_service(
            [up.port], name="bad", ssl_context=_client_context(trustme.CA()),
            server_hostname="upstream.example",
        )  # fmt: skip
        config = make_config([("/bad", make_route(bad, id="rb")), ("/", make_route(good))])
        async with proxy(config) as p:
            client = await Client.connect(p.port)
            for _ in range(3):
                await client.send(get("/good"))
                assert (await client.response()).status == 200
            assert up.connections == 1  # TLS connections are pooled too
            await client.send(get("/bad"))
            resp = await client.response()
            assert resp.status == 502
            assert resp.header("meshgate-error") == "upstream-tls-error"

    run(main())


def test_websocket_echo_through_the_proxy() -> None:
    async def main() -> None:
        async def echo(websocket: ServerConnection) -> None:
            assert websocket.request is not None
            await websocket.send("path=" + websocket.request.path)
            async for message in websocket:
                await websocket.send(message)

        async with ws_serve(echo, "127.0.0.1", 0, max_size=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            config = make_config([("/", make_route(make_service([port])))])
            async with proxy(config) as p:
                async with ws_connect(f"ws://127.0.0.1:{p.port}/chat?room=1", max_size=None) as ws:
                    assert await ws.recv() == "path=/chat?room=1"
                    for text in ("hello", "world"):
                        await ws.send(text)
                        assert await ws.recv() == text
                    big = b"\x01" * (4 * 1024 * 1024)
                    await ws.send(big)
                    assert await ws.recv() == big
                assert p.records[-1].status == 101
                # after the close both sides are gone and nothing leaked into the pool
                for _ in range(50):
                    if not p.engine.clients:
                        break
                    await asyncio.sleep(0.02)
                assert not p.engine.clients
                assert p.engine.pools.idle_count() == 0

    run(main())


def test_upgrade_refused_by_upstream_is_relayed_and_connection_closed() -> None:
    async def main() -> None:
        up = await TestUpstream().start()  # answers 200 to everything
        async with proxy(make_config([("/", make_route(make_service([up.port])))])) as p:
            client = await Client.connect(p.port)
            await client.send(
                b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
            resp = await client.response()
            assert resp.status == 200
            headers = {k.lower(): v for k, v in resp.json()["headers"]}
            assert headers["upgrade"] == "websocket"
            assert headers["connection"] == "upgrade"
            assert await client.closed()
            # a non-WebSocket upgrade (h2c) is not forwarded; the connection stays HTTP/1.1
            client = await Client.connect(p.port)
            await client.send(
                b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" + get("/y")
            )
            first = await client.response()
            second = await client.response()
            assert (first.status, second.status) == (200, 200)
            headers = {k.lower(): v for k, v in first.json()["headers"]}
            assert "upgrade" not in headers
            assert "http2-settings" not in headers

    run(main())


def test_https_listener_with_the_tls_modules_sni_context() -> None:
    async def main() -> None:
        from meshgate import snapshot
        from meshgate.proxy.tls import build_server_context

        ca = trustme.CA()
        certs = []
        for cid, name in (("c1", "one.example"), ("c2", "two.example")):
            issued = ca.issue_cert(name)
            certs.append(
                snapshot.Certificate(
                    id=cid,
                    cert="".join(b.bytes().decode() for b in issued.cert_chain_pems),
                    key=issued.private_key_pem.bytes().decode(),
                    snis=(name,),
                )
            )
        up = await TestUpstream().start()
        config = make_config([("/", make_route(make_service([up.port])))])
        seen_sni: list[str | None] = []
        match = config.router.match

        def recording_match(*args: object) -> object:
            seen_sni.append(args[4])  # type: ignore[arg-type]
            return match(*args)  # type: ignore[arg-type]

        config.router.match = recording_match  # type: ignore[method-assign]
        config.server_ssl_context = build_server_context(certs, "c1")
        async with proxy(config, protocol="https") as p:
            for name in ("two.example", "one.example"):
                client = await Client.connect(p.port, ssl=_client_context(ca), server_hostname=name)
                cert = client.writer.get_extra_info("peercert")
                assert ("DNS", name) in cert["subjectAltName"]
                await client.send(get(host=name))
                assert (await client.response()).status == 200
            assert seen_sni == ["two.example", "one.example"]

    run(main())
