"""oauth2-introspection through a running meshgate (the engine, in process) with a fake
introspection endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from meshgate.proxy.filters.testing_http import live_gateway, plugin
from meshgate.snapshot import Consumer

TOKENS = {"good": {"active": True, "username": "alice", "scope": "read", "client_id": "app"}}


async def start_idp(calls: list[str]) -> asyncio.Server:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                form = parse_qs((await reader.readexactly(length)).decode())
                token = form["token"][0]
                calls.append(token)
                data = json.dumps(TOKENS.get(token, {"active": False})).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_introspection_over_http() -> None:
    """In-process gateway (``live_gateway``): the Admin API's plugin list does not accept
    oauth2-introspection in declarative files yet."""
    calls: list[str] = []
    with live_gateway(consumers=[Consumer(id="c-alice", username="alice")]) as gw:
        server = gw.run(start_idp(calls))
        idp_port = server.sockets[0].getsockname()[1]
        config = {
            "introspection_url": f"http://127.0.0.1:{idp_port}/introspect",
            "authorization_value": "Basic YXBwOnNlY3JldA==",
        }
        gw.apply(
            [plugin("oauth2-introspection", config, route="r1")],
            [Consumer(id="c-alice", username="alice")],
        )
        try:
            for _ in range(3):
                res = gw.request("GET", "/r1/x", headers={"Authorization": "Bearer good"})
                assert res.status == 200, res.body
                seen = res.json()["headers"]
                assert seen["x-consumer-username"] == "alice"
                assert seen["x-credential-scope"] == "read"
                assert "authorization" not in seen
            assert calls == ["good"]  # cached after the first call
            res = gw.request("GET", "/r1/x", headers={"Authorization": "Bearer bad"})
            assert res.status == 401
            assert res.json()["error"] == "invalid_token"
            assert 'error="invalid_token"' in (res.header("WWW-Authenticate") or "")
            res = gw.request("GET", "/r1/x")
            assert res.status == 401
            assert res.json()["error"] == "invalid_request"
        finally:

            async def close() -> None:
                server.close()

            gw.run(close())
