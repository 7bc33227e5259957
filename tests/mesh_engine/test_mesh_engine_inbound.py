"""Mesh inbound HTTP listeners: mTLS (strict, permissive), client identity, permissions."""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
from mesh_engine_kit import (
    FRONTEND,
    INTRUDER,
    build,
    close,
    closed_without_data,
    connect,
    get,
    inbound,
    pki,
    proxy,
    run,
    start_app,
    start_echo,
    start_whoami,
)

from meshgate import snapshot

ALLOW_FRONTEND = (snapshot.PermissionRule(action="allow", identities=(FRONTEND,), origin="mtp-1"),)


def test_strict_serves_a_client_with_a_mesh_certificate() -> None:
    async def main() -> None:
        app, app_port, _ = await start_app()
        snap = build(inbound("in", "http", app_port))
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["in"], pki().frontend)
            first = await get(reader, writer, "/hello")
            second = await get(reader, writer, "/again")  # keep-alive over the mTLS session
            await close(writer)
        app.close()
        assert first.status == 200
        assert first.json()["url"] == "/hello"
        assert second.status == 200

    run(main())


@pytest.mark.parametrize("client", ["no-cert", "untrusted-ca", "plain-text", "garbage"])
def test_strict_rejects_clients_without_a_valid_certificate(client: str) -> None:
    async def main() -> None:
        app, app_port, counters = await start_app()
        snap = build(inbound("in", "http", app_port))
        async with proxy(snap) as px:
            port = px.ports["in"]
            if client == "no-cert":
                reader, writer = await connect(port, None)
                writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            elif client == "untrusted-ca":
                reader, writer = await connect(port, pki().stranger)
                writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            elif client == "plain-text":
                reader, writer = await connect(port, tls=False)
                writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            else:
                reader, writer = await connect(port, tls=False)
                writer.write(b"\x16\x03\x01\x00\x05hello" + bytes(range(256)) * 4)
            assert await closed_without_data(reader)
            await close(writer)
            # the listener still serves a good client afterwards
            reader, writer = await connect(port, pki().frontend)
            assert (await get(reader, writer)).status == 200
            await close(writer)
        app.close()
        assert counters.get("requests") == 1  # only the good client's request got through

    run(main())


@pytest.mark.parametrize("client", ["plain-text", "tls-no-cert", "tls-with-cert"])
def test_permissive_accepts_plain_text_and_tls(client: str) -> None:
    async def main() -> None:
        app, app_port, _ = await start_app()
        snap = build(inbound("in", "http", app_port, mode="permissive"))
        async with proxy(snap) as px:
            port = px.ports["in"]
            if client == "plain-text":
                reader, writer = await connect(port, tls=False)
            elif client == "tls-no-cert":
                reader, writer = await connect(port, None)
            else:
                reader, writer = await connect(port, pki().frontend)
            responses = [await get(reader, writer, f"/{i}") for i in range(3)]
            await close(writer)
        app.close()
        assert [r.status for r in responses] == [200, 200, 200]
        assert [r.json()["url"] for r in responses] == ["/0", "/1", "/2"]

    run(main())


def test_permissive_still_rejects_a_certificate_of_an_untrusted_ca() -> None:
    async def main() -> None:
        app, app_port, _ = await start_app()
        snap = build(inbound("in", "http", app_port, mode="permissive"))
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["in"], pki().stranger)
            writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
            assert await closed_without_data(reader)
            await close(writer)
        app.close()

    run(main())


def test_denied_identity_gets_403_and_the_connection_stays_usable() -> None:
    async def main() -> None:
        app, app_port, counters = await start_app()
        port = app_port
        snap = build(inbound("in", "http", port, permissions=ALLOW_FRONTEND))
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["in"], pki().intruder)
            denied = [await get(reader, writer, f"/{i}") for i in range(2)]
            await close(writer)
            reader, writer = await connect(px.ports["in"], pki().frontend)
            allowed = await get(reader, writer)
            await close(writer)
        app.close()
        assert [r.status for r in denied] == [403, 403]
        assert denied[0].headers["meshgate-error"] == "forbidden by mesh traffic permission"
        assert "message" in denied[0].json()
        assert allowed.status == 200
        assert counters.get("requests") == 1

    run(main())


def test_permissions_rules_first_match_decides(caplog: pytest.LogCaptureFixture) -> None:
    rules = (
        snapshot.PermissionRule(action="deny", identities=(FRONTEND,), origin="deny-frontend"),
        snapshot.PermissionRule(action="allow_with_shadow_deny", identities=(INTRUDER,)),
        snapshot.PermissionRule(action="allow", identities=(), origin="everyone"),
    )

    async def main() -> list[int]:
        app, app_port, _ = await start_app()
        snap = build(
            inbound("in", "http", app_port, mode="permissive",
                    permissions=rules)
        )  # fmt: skip
        statuses = []
        async with proxy(snap) as px:
            for pair, tls in ((pki().frontend, True), (pki().intruder, True), (None, False)):
                reader, writer = await connect(px.ports["in"], pair, tls=tls)
                statuses.append((await get(reader, writer)).status)
                await close(writer)
        app.close()
        return statuses

    with caplog.at_level(logging.INFO, logger="meshgate.proxy.mesh"):
        statuses = run(main())
    # frontend: denied by the first rule; intruder: allowed (shadow deny); plain: everyone
    assert statuses == [403, 200, 200]
    assert any(
        "shadow deny" in r.getMessage() and INTRUDER in r.getMessage() for r in caplog.records
    )


def test_no_matching_rule_denies_and_plain_clients_have_no_identity() -> None:
    async def main() -> tuple[int, int]:
        app, app_port, _ = await start_app()
        snap = build(
            inbound("in", "http", app_port, mode="permissive",
                    permissions=ALLOW_FRONTEND)
        )  # fmt: skip
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["in"], tls=False)
            plain = (await get(reader, writer)).status
            await close(writer)
            reader, writer = await connect(px.ports["in"], None)
            anonymous = (await get(reader, writer)).status
            await close(writer)
        app.close()
        return plain, anonymous

    assert run(main()) == (403, 403)


def test_a_denied_request_with_a_body_is_answered_and_nothing_reaches_the_app() -> None:
    async def main() -> None:
        app, app_port, counters = await start_app()
        snap = build(inbound("in", "http", app_port,
                             permissions=ALLOW_FRONTEND))  # fmt: skip
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["in"], pki().intruder)
            writer.write(b"POST /x HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello")
            from mesh_engine_kit import read_response

            response = await read_response(reader)
            await close(writer)
        app.close()
        assert response.status == 403
        assert counters.get("connections") is None

    run(main())


def test_the_sidecar_presents_its_identity_upstream() -> None:
    """Sanity of the kit: the whoami upstream reports the client's SPIFFE id."""

    async def main() -> None:
        whoami = await start_whoami(pki().backend)
        reader, writer = await connect(whoami.port, pki().frontend)
        response = await get(reader, writer)
        await close(writer)
        whoami.server.close()
        assert response.json() == {"peer": [FRONTEND]}
        echo = await start_echo(pki().backend)
        reader, writer = await connect(echo.port, pki().intruder)
        line = await asyncio.wait_for(reader.readline(), 5)
        await close(writer)
        echo.server.close()
        assert line == f"PEER {INTRUDER}\n".encode()

    run(main())


@pytest.mark.parametrize(
    ("payload", "answer"),
    [
        (b"\x16\x03\x01\x00\x05hello" + bytes(range(256)) * 4, b""),  # a broken ClientHello
        (b"\x00\x01\x02 not http\r\n\r\n", b"HTTP/1.1 400"),  # plain text, not HTTP
    ],
)
def test_garbage_on_a_permissive_listener(payload: bytes, answer: bytes) -> None:
    async def main() -> None:
        _, app_port, counters = await start_app()
        snap = build(inbound("in", "http", app_port, mode="permissive"))
        async with proxy(snap) as px:
            reader, writer = await connect(px.ports["in"], tls=False)
            writer.write(payload)
            try:
                got = await asyncio.wait_for(reader.read(), 10)
            except (ConnectionError, ssl.SSLError):
                got = b""
            await close(writer)
            reader, writer = await connect(px.ports["in"], tls=False)
            after = await get(reader, writer)
            await close(writer)
        assert got.startswith(answer)
        if not answer:
            assert got == b""
        assert after.status == 200
        assert counters.get("requests") == 1

    run(main())


def test_missing_workload_certificate_fails_handshakes_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        _, app_port, counters = await start_app()
        snap = build(inbound("in", "http", app_port))
        snap = snap.model_copy(update={"certificates": ()}).with_version()
        async with proxy(snap) as px:
            for _ in range(2):
                try:
                    reader, writer = await connect(px.ports["in"], pki().frontend)
                except (ConnectionError, ssl.SSLError):
                    continue
                writer.write(b"GET / HTTP/1.1\r\nHost: web\r\n\r\n")
                assert await closed_without_data(reader)
                await close(writer)
        assert counters.get("requests") is None

    with caplog.at_level(logging.ERROR, logger="meshgate.proxy.mesh"):
        run(main())
    failures = [r for r in caplog.records if "handshakes fail" in r.getMessage()]
    assert len(failures) == 1


def test_a_permission_change_applies_to_live_connections() -> None:
    deny_frontend = (snapshot.PermissionRule(action="allow", identities=(INTRUDER,)),)

    async def main() -> list[int]:
        _, app_port, _ = await start_app()
        allowing = build(inbound("in", "http", app_port, permissions=ALLOW_FRONTEND))
        denying = build(inbound("in", "http", app_port, permissions=deny_frontend))
        statuses = []
        async with proxy(allowing) as px:
            reader, writer = await connect(px.ports["in"], pki().frontend)
            statuses.append((await get(reader, writer)).status)
            await px.runtime.apply(denying)
            statuses.append((await get(reader, writer)).status)  # same connection
            await px.runtime.apply(allowing)
            statuses.append((await get(reader, writer)).status)
            await close(writer)
        return statuses

    assert run(main()) == [200, 403, 200]
