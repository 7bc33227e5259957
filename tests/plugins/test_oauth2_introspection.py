"""oauth2-introspection against a fake introspection endpoint on 127.0.0.1: active and
inactive tokens, consumer mapping, forwarded claims, caching and sharing of calls, endpoint
failures, timeouts, hostile tokens."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, arun_phases, make_handler
from meshgate.snapshot import Consumer

ALICE = Consumer(id="c-alice", username="alice", custom_id="client-9")
GUEST = Consumer(id="c-guest", username="guest")
CONSUMERS = [ALICE, GUEST]


@dataclass
class FakeIdP:
    """An introspection endpoint: ``answers[token]`` = JSON (or a callable giving raw
    bytes); counts requests and connections."""

    answers: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    delay: float = 0.0
    port: int = 0
    server: asyncio.Server | None = None
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    handlers: list[Any] = field(default_factory=list)

    def handler(self, consumers: list[Consumer] = CONSUMERS, **conf: Any) -> Any:
        """A plugin handler for this endpoint (stopped when the test ends)."""
        h = make_handler("oauth2-introspection", config(self, **conf), consumers=consumers)
        self.handlers.append(h)
        return h

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for h in self.handlers:
            await h.stop()
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                self.requests.append({"line": lines[0], "headers": headers, "form": form})
                if self.delay:
                    await asyncio.sleep(self.delay)
                answer = self.answers.get(form.get("token", ""), {"active": False})
                if callable(answer):
                    writer.write(answer())
                    await writer.drain()
                    writer.close()
                    return
                data = json.dumps(answer).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def config(idp: FakeIdP, **extra: Any) -> dict[str, Any]:
    return {
        "introspection_url": f"http://127.0.0.1:{idp.port}/introspect?realm=x",
        "authorization_value": "Basic Y2xpZW50OnNlY3JldA==",
        **extra,
    }


def with_idp(test: Callable[[FakeIdP], Awaitable[None]]) -> None:
    async def main() -> None:
        idp = FakeIdP()
        await idp.start()
        try:
            await test(idp)
        finally:
            await idp.close()

    asyncio.run(main())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ACTIVE = {
    "active": True,
    "username": "alice",
    "client_id": "client-9",
    "scope": "read write",
    "token_type": "access_token",
    "exp": int(time.time()) + 3600,
    "aud": ["api", "web"],
    "sub": "u-1",
    "tenant": "acme",
}

# --------------------------------------------------------------------------- config


def test_config_rules() -> None:
    out = validate_plugin_config(
        "oauth2-introspection", {"introspection_url": "https://idp/x", "authorization_value": "v"}
    )
    assert out["ttl"] == 30
    assert out["consumer_by"] == "username"
    assert out["hide_credentials"]
    assert out["timeout"] == 10000
    assert out["keepalive"] == 60000
    assert out["run_on_preflight"]
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config(
            "oauth2-introspection",
            {
                "introspection_url": "ftp://idp/x",
                "authorization_value": "a\r\nInjected: 1",
                "consumer_by": "email",
                "ttl": -1,
                "custom_introspection_headers": {"bad name": "x"},
                "custom_claims_forward": ["a b"],
            },
        )
    assert set(caught.value.to_fields()) == {
        "config.introspection_url",
        "config.authorization_value",
        "config.consumer_by",
        "config.ttl",
        "config.custom_introspection_headers",
        "config.custom_claims_forward",
    }
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("oauth2-introspection", {})
    assert set(caught.value.to_fields()) == {
        "config.introspection_url",
        "config.authorization_value",
    }


# --------------------------------------------------------------------------- behaviour


def test_active_token_authenticates_and_forwards_claims() -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["tok-1"] = ACTIVE
        h = idp.handler(
            token_type_hint="access_token",
            custom_claims_forward=["tenant"],
            custom_introspection_headers={"X-Extra": "1"},
        )
        ctx = FakeContext(headers=bearer("tok-1"))
        res = await arun_phases(h, ctx)
        assert res.exit is None
        assert ctx.consumer == ALICE
        up = ctx.upstream_headers()
        assert up["x-consumer-id"] == ["c-alice"]
        assert up["x-credential-identifier"] == ["alice"]
        assert up["x-credential-scope"] == ["read write"]
        assert up["x-credential-client-id"] == ["client-9"]
        assert up["x-credential-aud"] == ["api,web"]
        assert up["x-credential-tenant"] == ["acme"]
        assert "authorization" not in up  # hide_credentials defaults to true
        sent = idp.requests[0]
        assert sent["line"] == "POST /introspect?realm=x HTTP/1.1"
        assert sent["headers"]["authorization"] == "Basic Y2xpZW50OnNlY3JldA=="
        assert sent["headers"]["x-extra"] == "1"
        assert sent["form"] == {"token": "tok-1", "token_type_hint": "access_token"}

    with_idp(test)


def test_consumer_by_client_id_and_unknown_consumer() -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["t"] = {"active": True, "client_id": "client-9"}
        idp.answers["u"] = {"active": True, "username": "stranger"}
        h = idp.handler(consumer_by="client_id")
        ctx = FakeContext(headers=bearer("t"))
        assert (await arun_phases(h, ctx)).exit is None
        assert ctx.consumer == ALICE
        ctx = FakeContext(headers=bearer("u"))
        assert (await arun_phases(h, ctx)).exit is None
        assert ctx.consumer is None
        assert ctx.credential is not None
        assert "x-consumer-id" not in ctx.upstream_headers()

    with_idp(test)


def test_inactive_and_missing_tokens() -> None:
    async def test(idp: FakeIdP) -> None:
        h = idp.handler()
        res = await arun_phases(h, FakeContext(headers=bearer("revoked")))
        assert res.status == 401
        assert json.loads(res.body) == {
            "error": "invalid_token",
            "error_description": "The access token is invalid or has expired",
        }
        assert res.headers["www-authenticate"][0].startswith(
            'Bearer realm="service" error="invalid_token"'
        )
        res = await arun_phases(h, FakeContext())
        assert res.status == 401
        assert json.loads(res.body)["error"] == "invalid_request"
        assert len(idp.requests) == 1  # nothing asked without a token

    with_idp(test)


def test_query_token_is_read_and_hidden() -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["q"] = ACTIVE
        h = idp.handler()
        ctx = FakeContext(path="/x?a=1&access_token=q")
        assert (await arun_phases(h, ctx)).exit is None
        assert ctx.upstream_query == "a=1"

    with_idp(test)


def test_answers_are_cached_and_concurrent_calls_shared() -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["c"] = ACTIVE
        idp.delay = 0.05
        h = idp.handler()
        results = await asyncio.gather(
            *(arun_phases(h, FakeContext(headers=bearer("c"))) for _ in range(5))
        )
        assert all(r.exit is None for r in results)
        assert len(idp.requests) == 1
        ctx = FakeContext(headers=bearer("c"))
        assert h.access(ctx) is None  # a cache hit needs no await
        assert ctx.consumer == ALICE
        await arun_phases(h, FakeContext(headers=bearer("other")))
        await arun_phases(h, FakeContext(headers=bearer("other")))  # negative answer cached
        assert len(idp.requests) == 2
        assert idp.connections == 1  # keep-alive connection reused

    with_idp(test)


def test_ttl_expiry_and_token_exp_bound_the_cache() -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["short"] = {**ACTIVE, "exp": time.time() + 0.05}
        h = idp.handler(ttl=30)
        await arun_phases(h, FakeContext(headers=bearer("short")))
        await asyncio.sleep(0.1)
        await arun_phases(h, FakeContext(headers=bearer("short")))
        assert len(idp.requests) == 2  # cached only until the token's exp

    with_idp(test)


@pytest.mark.parametrize(
    "answer",
    [
        lambda: b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        lambda: b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnot json",
        lambda: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
        lambda: b"garbage\r\n\r\n",
        lambda: b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n{}",
        lambda: b"",
    ],
)
def test_endpoint_failures_are_500_and_not_cached(answer: Callable[[], bytes]) -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["t"] = answer
        h = idp.handler()
        for _ in range(2):
            res = await arun_phases(h, FakeContext(headers=bearer("t")))
            assert res.status == 500
            assert json.loads(res.body) == {"message": "An unexpected error occurred"}
        assert len(idp.requests) == 2

    with_idp(test)


def test_chunked_answer_and_timeout() -> None:
    async def test(idp: FakeIdP) -> None:
        data = json.dumps(ACTIVE).encode()
        idp.answers["ch"] = lambda: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + f"{len(data[:10]):x}\r\n".encode()
            + data[:10]
            + b"\r\n"
            + f"{len(data[10:]):x}\r\n".encode()
            + data[10:]
            + b"\r\n0\r\n\r\n"
        )
        h = idp.handler(timeout=200)
        ctx = FakeContext(headers=bearer("ch"))
        assert (await arun_phases(h, ctx)).exit is None
        assert ctx.consumer == ALICE
        idp.delay = 1.0
        res = await arun_phases(h, FakeContext(headers=bearer("slow")))
        assert res.status == 500

    with_idp(test)


def test_unreachable_endpoint_is_500() -> None:
    async def test(idp: FakeIdP) -> None:
        h = idp.handler()
        assert idp.server is not None
        idp.server.close()
        await idp.server.wait_closed()
        res = await arun_phases(h, FakeContext(headers=bearer("t")))
        assert res.status == 500

    with_idp(test)


def test_hostile_tokens_and_claims() -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["evil"] = {"active": True, "username": "alice", "scope": "a\r\nX-Admin: 1"}
        h = idp.handler()
        ctx = FakeContext(headers=bearer("evil"))
        assert (await arun_phases(h, ctx)).exit is None
        assert "x-credential-scope" not in ctx.upstream_headers()  # unsafe value dropped
        res = await arun_phases(h, FakeContext(headers=bearer("x" * 20_000)))
        assert res.status == 401
        assert json.loads(res.body)["error"] == "invalid_request"
        res = await arun_phases(h, FakeContext(headers=bearer("\xff\xfe\x80")))
        assert res.status == 401

    with_idp(test)


def test_anonymous_and_preflight() -> None:
    async def test(idp: FakeIdP) -> None:
        h = idp.handler(anonymous="guest")
        ctx = FakeContext(headers=bearer("nope"))
        assert (await arun_phases(h, ctx)).exit is None
        assert ctx.consumer == GUEST
        ctx = FakeContext()
        assert (await arun_phases(h, ctx)).exit is None
        assert ctx.consumer == GUEST
        p = idp.handler(run_on_preflight=False)
        assert (await arun_phases(p, FakeContext(method="OPTIONS"))).exit is None

    with_idp(test)


def test_a_cancelled_asker_does_not_cancel_the_shared_call() -> None:
    async def test(idp: FakeIdP) -> None:
        idp.answers["s"] = ACTIVE
        idp.delay = 0.1
        h = idp.handler()
        first = asyncio.ensure_future(arun_phases(h, FakeContext(headers=bearer("s"))))
        await asyncio.sleep(0.02)
        second = asyncio.ensure_future(arun_phases(h, FakeContext(headers=bearer("s"))))
        await asyncio.sleep(0.02)
        first.cancel()  # the first client went away
        res = await second
        assert res.exit is None
        assert len(idp.requests) == 1
        assert h.cache["s"][1].active

    with_idp(test)
