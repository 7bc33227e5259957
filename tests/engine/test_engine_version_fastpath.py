"""The request's HTTP version as the engine works it out: without a Connection header it is
read from the parser's keep-alive verdict instead of ``get_http_version`` — the outcome must
be what the version string says, for every version the parser accepts, and refusals keep
their order (bad version, then head too large, then a refused header)."""

from __future__ import annotations

from typing import Any

import httptools
import pytest
from engine_kit import make_config, proxy, request, run

import meshgate.proxy.http.server as server_module

VERSIONS = [b"0.9", b"1.0", b"1.1", b"2.0"]
CONNECTION_HEADERS = [
    b"",
    b"Connection: keep-alive\r\n",
    b"Connection: close\r\n",
    b"connection: Keep-Alive, X-Other\r\n",
    b"Connection: x-other\r\n",
    b"Proxy-Connection: keep-alive\r\n",
    b"Proxy-Connection: close\r\n",
    b"PROXY-CONNECTION: close\r\nConnection: keep-alive\r\n",
]


def _reference(raw: bytes) -> tuple[int, bool, bool]:
    """(status, http10, keep_alive) by the version string, as the engine used to decide."""
    seen: dict[str, Any] = {}

    class Probe:
        def on_headers_complete(self) -> None:
            seen["version"] = parser.get_http_version()
            seen["keep_alive"] = parser.should_keep_alive()

    parser = httptools.HttpRequestParser(Probe())
    parser.feed_data(raw)
    version = seen["version"]
    if version not in ("1.0", "1.1"):
        return (505 if version > "1.1" else 400), False, False
    return 204, version == "1.0", seen["keep_alive"]


def _answer_204(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    facts: list[tuple[bool, bool]] = []

    def dispatch(client: Any, req: Any) -> None:
        facts.append((req.http10, req.keep_alive))
        client.reply(req, 204, "test", "")

    monkeypatch.setattr(server_module, "dispatch", dispatch)
    return facts


@pytest.mark.pure_python(
    "it patches server.dispatch to record what the engine decided; the compiled server calls "
    "dispatch directly and never sees the patch (the test runs in make test-pure)"
)
@pytest.mark.parametrize("version", VERSIONS)
def test_version_and_keep_alive_match_the_version_string(
    version: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = _answer_204(monkeypatch)

    async def main() -> None:
        async with proxy(make_config([])) as p:
            for header in CONNECTION_HEADERS:
                raw = b"GET / HTTP/" + version + b"\r\nHost: a.test\r\n" + header + b"\r\n"
                status, http10, keep_alive = _reference(raw)
                facts.clear()
                resp = await request(p.port, raw)
                assert resp.status == status, (raw, resp.status)
                if status == 204:
                    assert facts == [(http10, keep_alive)], raw
                    closes = resp.header("connection") == "close"
                    assert closes is not keep_alive, raw

    run(main())


def test_refusals_keep_their_order(monkeypatch: pytest.MonkeyPatch) -> None:
    _answer_204(monkeypatch)
    twice = b"Host: a.test\r\nHost: b.test\r\n"

    async def main() -> None:
        async with proxy(make_config([]), max_header_bytes=400) as p:
            # a bad version wins over a refused header
            resp = await request(p.port, b"GET / HTTP/2.0\r\n" + twice + b"\r\n")
            assert resp.status == 505
            resp = await request(p.port, b"GET / HTTP/0.9\r\n" + twice + b"\r\n")
            assert resp.status == 400
            assert b"version" in resp.body
            # too large wins over a refused header (the head fits the read-time check: one
            # read of it is under the limit, headers and URL together are not)
            long_value = b"v" * 190
            big = b"X-A: " + long_value + b"\r\nX-B: " + long_value + b"\r\n"
            resp = await request(
                p.port, b"GET /" + b"u" * 40 + b" HTTP/1.1\r\n" + twice + big + b"\r\n"
            )
            assert resp.status == 431
            resp = await request(p.port, b"GET / HTTP/1.1\r\n" + twice + b"\r\n")
            assert resp.status == 400
            assert b"Host" in resp.body

    run(main())
