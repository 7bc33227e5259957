"""Canned responses the proxy produces itself: JSON errors with a ``meshgate-error`` reason.

Bodies are Kong's (``{"message":"..."}``) where Kong has one.  The head (minus ``Date``) and
body are memoized by their inputs; the ``Date`` line is recomputed once per second.
"""

from __future__ import annotations

import json
import time
from email.utils import formatdate
from http import HTTPStatus

from meshgate.proxy.http.heads import CRLF, SERVER_LINE, status_line

MSG_NO_ROUTE = "no Route matched with those values"
MSG_NO_SERVICE = "no Service for this Route"
MSG_NO_PEER = "failure to get a peer from the ring-balancer"
MSG_BAD_GATEWAY = "An invalid response was received from the upstream server"
MSG_TIMEOUT = "The upstream server is timing out"
MSG_HTTPS = "Please use HTTPS protocol"

_MemoKey = tuple[int, str, str, bool, bool, bytes, bool]
_memo: dict[_MemoKey, tuple[bytes, bytes]] = {}
_date_second = -1
_date_line = b""


def date_line() -> bytes:
    """The ``Date:`` header line for now, recomputed once per second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_second = now
        _date_line = b"Date: " + formatdate(now, usegmt=True).encode() + CRLF
    return _date_line


_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}


def reason_phrase(status: int) -> bytes:
    return _PHRASES.get(status, b"Unknown")


def error_response(
    status: int,
    message: str,
    reason: str,
    *,
    close: bool,
    server_tokens: bool = True,
    extra: bytes = b"",
    http10: bool = False,
) -> bytes:
    """A complete response: JSON ``{"message": message}`` and ``meshgate-error: reason``.

    An empty ``message`` gives an empty body.  ``close`` adds ``Connection: close``; an
    HTTP/1.0 client whose connection stays open gets ``Connection: keep-alive``.  ``extra``
    holds more ready header lines (each ending in CRLF).
    """
    key = (status, message, reason, close, server_tokens, extra, http10)
    memo = _memo.get(key)
    if memo is None:
        body = json.dumps({"message": message}).encode() + b"\n" if message else b""
        head = [status_line(status, reason_phrase(status))]
        if body:
            head.append(b"Content-Type: application/json; charset=utf-8\r\n")
        head.append(b"Content-Length: %d\r\n" % len(body))
        if server_tokens:
            head.append(SERVER_LINE)
        if reason:
            head.append(b"meshgate-error: " + reason.encode() + CRLF)
        if close:
            head.append(b"Connection: close\r\n")
        elif http10:
            head.append(b"Connection: keep-alive\r\n")
        head.append(extra)
        memo = (b"".join(head), body)
        if len(_memo) < 4096:
            _memo[key] = memo
    return memo[0] + date_line() + CRLF + memo[1]
