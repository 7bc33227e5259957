"""Sans-io head handling: request/response header classification and head building."""

from __future__ import annotations

import pytest

from meshgate.proxy.http.errors import error_response
from meshgate.proxy.http.heads import (
    VIA_LINE,
    HeadError,
    RequestFacts,
    build_request_head,
    connection_tokens,
    forwarded_headers,
    scan_request_headers,
    scan_response_headers,
    status_line,
)


def _scan(*headers: tuple[bytes, bytes]) -> RequestFacts:
    facts = RequestFacts()
    scan_request_headers(list(headers), facts)
    return facts


def test_request_scan_keeps_end_to_end_headers_and_classifies_the_rest() -> None:
    facts = _scan(
        (b"Host", b"example.com"),
        (b"Content-Length", b"5"),
        (b"X-Custom", b"a"),
        (b"Connection", b"keep-alive, Upgrade, X-Custom"),
        (b"Upgrade", b"websocket"),
        (b"Keep-Alive", b"timeout=5"),
        (b"TE", b"trailers"),
        (b"Proxy-Authorization", b"secret"),
        (b"Expect", b"100-continue"),
        (b"X-Forwarded-For", b"1.1.1.1"),
        (b"x-forwarded-for", b"2.2.2.2"),
        (b"Accept", b"*/*"),
    )
    assert facts.host == b"example.com"
    assert facts.content_length == 5
    assert not facts.chunked
    assert facts.upgrade == b"websocket"
    assert facts.expect_continue
    assert facts.fwd_for == b"1.1.1.1, 2.2.2.2"
    assert facts.kept == [b"Content-Length: 5\r\n", b"Accept: */*\r\n"]  # X-Custom named


def test_upgrade_needs_connection_upgrade() -> None:
    assert _scan((b"Upgrade", b"websocket")).upgrade is None


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"Host", b"a"), (b"Host", b"b")], 400),
        ([(b"Content-Length", b"1"), (b"Content-Length", b"1")], 400),
        ([(b"Content-Length", b"x")], 400),
        ([(b"Content-Length", b"1"), (b"Transfer-Encoding", b"chunked")], 400),
        ([(b"Transfer-Encoding", b"gzip")], 400),
        ([(b"Transfer-Encoding", b"chunked, gzip")], 400),
        ([(b"Transfer-Encoding", b"gzip, chunked")], 501),
        ([(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"chunked")], 400),
        ([(b"Expect", b"other")], 417),
    ],
)
def test_request_scan_refuses(headers: list[tuple[bytes, bytes]], status: int) -> None:
    with pytest.raises(HeadError) as info:
        scan_request_headers(headers, RequestFacts())
    assert info.value.status == status


def test_chunked_is_case_insensitive() -> None:
    assert _scan((b"Transfer-Encoding", b"Chunked")).chunked


def test_build_request_head() -> None:
    forwarded = forwarded_headers(
        client_ip=b"10.0.0.1", incoming_for=b"1.1.1.1", proto=b"http", host=b"h",
        port=b"8000", path=b"/p", prefix=b"/api", real_ip=b"10.0.0.1",
    )  # fmt: skip
    head = build_request_head(
        b"POST", b"/p?q", b"up:8080", [b"A: b\r\n"], forwarded, chunked=True, upgrade=None
    )
    assert head == (
        b"POST /p?q HTTP/1.1\r\nHost: up:8080\r\nA: b\r\n"
        b"X-Forwarded-For: 1.1.1.1, 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
        b"X-Forwarded-Host: h\r\nX-Forwarded-Port: 8000\r\nX-Forwarded-Path: /p\r\n"
        b"X-Real-IP: 10.0.0.1\r\nX-Forwarded-Prefix: /api\r\n"
        b"Transfer-Encoding: chunked\r\n" + VIA_LINE + b"\r\n"
    )
    ws = build_request_head(b"GET", b"/", b"h", [], b"", chunked=False, upgrade=b"websocket")
    assert b"Connection: upgrade\r\nUpgrade: websocket\r\n" in ws


def test_response_scan() -> None:
    facts = scan_response_headers(
        [
            (b"Content-Length", b"10"),
            (b"Connection", b"close, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Keep-Alive", b"timeout=1"),
            (b"Proxy-Authenticate", b"Basic"),
            (b"Server", b"up"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ]
    )
    assert facts.content_length == 10
    assert not facts.chunked
    assert facts.kept == [
        b"Content-Length: 10\r\n",
        b"Server: up\r\n",
        b"Set-Cookie: a=1\r\n",
        b"Set-Cookie: b=2\r\n",
    ]
    chunked = scan_response_headers([(b"Transfer-Encoding", b"chunked")])
    assert chunked.chunked
    assert chunked.kept == []


def test_connection_tokens_and_status_line() -> None:
    assert connection_tokens(b" Keep-Alive ,, X-A") == [b"keep-alive", b"x-a"]
    assert status_line(200, b"OK") == b"HTTP/1.1 200 OK\r\n"
    assert status_line(599, b"") == b"HTTP/1.1 599 \r\n"


def test_error_response_shape() -> None:
    data = error_response(404, "no Route matched with those values", "no-route", close=False)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert b"\r\nmeshgate-error: no-route" in head
    assert b"Date: " in head
    assert b"Content-Length: %d" % len(body) in head
    assert body == b'{"message": "no Route matched with those values"}\n'
    closing = error_response(400, "bad", "bad-request", close=True, server_tokens=False)
    assert b"Connection: close" in closing
    assert b"Server:" not in closing
    empty = error_response(301, "", "https-required", close=False, extra=b"Location: x\r\n")
    assert empty.endswith(b"\r\n\r\n")
    assert b"Content-Length: 0" in empty
