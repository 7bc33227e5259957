"""hmac-auth with FakeContext: signatures of every algorithm, the signing string rules,
clock skew, enforced headers, body digest, Kong's 401 messages, hostile headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from email.utils import formatdate
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.plugins.hmac_auth.handler import parse_authorization
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.snapshot import Consumer

ALICE = Consumer(
    id="c-alice",
    username="alice",
    credentials={"hmacauth_credentials": ({"id": "h1", "username": "alice", "secret": "s3cr3t"},)},
)
GUEST = Consumer(id="c-guest", username="guest")


def now_date(offset: float = 0) -> str:
    import time

    return formatdate(time.time() + offset, usegmt=True)


def signed(
    method: str = "GET",
    path: str = "/orders?id=1",
    *,
    signed_headers: tuple[str, ...] = ("date", "@request-target"),
    algorithm: str = "hmac-sha256",
    secret: bytes = b"s3cr3t",
    username: str = "alice",
    extra: dict[str, str] | None = None,
    header: str = "Authorization",
) -> dict[str, str]:
    """Request headers with a signature computed as a client would, from the spec text."""
    headers = {"Date": now_date(), **(extra or {})}
    lowered = {k.lower(): v for k, v in headers.items()}
    lines = []
    for name in signed_headers:
        if name == "@request-target":
            lines.append(f"@request-target: {method.lower()} {path}")
        elif name == "request-line":
            lines.append(f"{method} {path} HTTP/1.1")
        elif name in lowered:
            lines.append(f"{name}: {lowered[name]}")
        else:
            lines.append(f"{name}:")
    digest = getattr(hashlib, algorithm.removeprefix("hmac-"))
    signature = base64.b64encode(
        hmac.new(secret, "\n".join(lines).encode(), digest).digest()
    ).decode()
    headers[header] = (
        f'hmac username="{username}", algorithm="{algorithm}", '
        f'headers="{" ".join(signed_headers)}", signature="{signature}"'
    )
    return headers


def run(headers: dict[str, str], config: dict[str, Any] | None = None, **kw: Any):  # type: ignore[no-untyped-def]
    kw.setdefault("path", "/orders?id=1")
    ctx = FakeContext(headers=headers, **kw)
    return ctx, run_phases(make_handler("hmac-auth", config or {}, consumers=[ALICE, GUEST]), ctx)


def message(res) -> str:  # type: ignore[no-untyped-def]
    return str(json.loads(res.body)["message"])


NOT_VALID = "HMAC signature cannot be verified"
NOT_SAME = "HMAC signature does not match"


def test_defaults_and_config_errors() -> None:
    assert validate_plugin_config("hmac-auth", {}) == {
        "hide_credentials": False,
        "clock_skew": 300,
        "anonymous": None,
        "validate_request_body": False,
        "enforce_headers": [],
        "algorithms": ["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"],
        "realm": None,
    }
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("hmac-auth", {"clock_skew": 0, "algorithms": ["hmac-md5"]})
    assert set(caught.value.to_fields()) == {"config.clock_skew", "config.algorithms.0"}


@pytest.mark.parametrize("algorithm", ["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"])
def test_every_algorithm(algorithm: str) -> None:
    ctx, res = run(signed(algorithm=algorithm))
    assert res.exit is None
    assert ctx.consumer == ALICE
    up = ctx.upstream_headers()
    assert up["x-credential-identifier"] == ["alice"]
    assert up["x-consumer-id"] == ["c-alice"]


def test_request_line_custom_and_absent_headers() -> None:
    headers = signed(
        "POST",
        "/orders?id=1",
        signed_headers=("request-line", "x-custom", "x-absent", "date"),
        extra={"X-Custom": "v 1"},
    )
    ctx, res = run(headers, method="POST")
    assert res.exit is None
    assert ctx.consumer == ALICE


def test_proxy_authorization_and_hide_credentials() -> None:
    headers = signed(header="Proxy-Authorization")
    ctx, res = run(headers, {"hide_credentials": True})
    assert res.exit is None
    assert "proxy-authorization" not in ctx.upstream_headers()
    ctx, res = run(signed(), {"hide_credentials": True})
    assert res.exit is None
    assert "authorization" not in ctx.upstream_headers()


def test_x_date_header_is_accepted() -> None:
    headers = signed(signed_headers=("x-date",), extra={"X-Date": now_date()})
    del headers["Date"]
    _ctx, res = run(headers)
    assert res.exit is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda h: h.update(Date=now_date(-301)), "date"),
        (lambda h: h.update(Date=now_date(+400)), "date"),
        (lambda h: h.pop("Date"), "date"),
        (lambda h: h.update(Date="yesterday-ish"), "date"),
        (lambda h: h.update(Date="\xff" * 5000), "date"),
        (
            lambda h: h.update(Authorization=h["Authorization"].replace("alice", "mallory")),
            NOT_VALID,
        ),
        (lambda h: h.update(Authorization="hmac garbage"), NOT_VALID),
        (lambda h: h.update(Authorization="Basic YTpi"), NOT_VALID),
        (lambda h: h.update(Authorization="hmac " + "x" * 100_000), NOT_VALID),
        (lambda h: h.update(Authorization='hmac username="alice"'), NOT_VALID),
        (lambda h: h.update(Authorization=h["Authorization"][:-3] + 'AA="'), NOT_SAME),
        (
            lambda h: h.update(
                Authorization=h["Authorization"].replace('signature="', 'signature="!')
            ),
            NOT_SAME,
        ),
    ],
)
def test_failures(change: Any, expected: str) -> None:
    headers = signed()
    change(headers)
    _, res = run(headers)
    assert res.status == 401
    if expected == "date":
        assert message(res).startswith(NOT_VALID + ", a valid date or x-date header is required")
    else:
        assert message(res) == expected
    assert res.headers["www-authenticate"] == ["hmac"]


def test_tampered_request_does_not_match() -> None:
    _, res = run(signed(path="/orders?id=1"), path="/orders?id=2")
    assert message(res) == NOT_SAME
    _, res = run(signed(secret=b"other"))
    assert message(res) == NOT_SAME


def test_no_credentials_is_unauthorized() -> None:
    _, res = run({"Date": now_date()}, {"realm": "r"})
    assert res.status == 401
    assert message(res) == "Unauthorized"
    assert res.headers["www-authenticate"] == ['hmac realm="r"']


def test_algorithms_and_enforced_headers() -> None:
    _, res = run(signed(algorithm="hmac-sha1"), {"algorithms": ["hmac-sha256"]})
    assert message(res) == NOT_VALID
    _, res = run(signed(signed_headers=("date",)), {"enforce_headers": ["date", "@request-target"]})
    assert message(res) == NOT_VALID
    _ctx, res = run(signed(), {"enforce_headers": ["date", "@request-target"]})
    assert res.exit is None


def test_body_digest_validation() -> None:
    body = b'{"amount": 10}'
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    conf = {"validate_request_body": True}
    headers = signed("POST", signed_headers=("date", "digest"), extra={"Digest": digest})
    _, res = run(headers, conf, method="POST", body=body)
    assert res.exit is None
    _, res = run(headers, conf, method="POST", body=b'{"amount": 99}')
    assert message(res) == NOT_SAME
    no_digest = signed("POST")
    _, res = run(no_digest, conf, method="POST", body=body)  # body without digest
    assert message(res) == NOT_SAME
    _ctx, res = run(signed(), conf)  # no body, no digest: fine
    assert res.exit is None


def test_anonymous() -> None:
    ctx, res = run({"Authorization": "hmac nope"}, {"anonymous": "guest"})
    assert res.exit is None
    assert ctx.consumer == GUEST


def test_parse_authorization() -> None:
    value = 'hmac username="u", algorithm="hmac-sha1", headers="a b", signature="c2ln"'
    assert parse_authorization(value) == {
        "username": "u",
        "algorithm": "hmac-sha1",
        "headers": "a b",
        "signature": "c2ln",
    }
    assert parse_authorization('hmac username="u", algorithm="x"') == {}
    assert parse_authorization(None) == {}
