"""basic-auth with FakeContext: Kong's salted SHA-1 password hashes, header order, 401s,
anonymous, hide_credentials, hostile input."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from meshgate.controlplane.admin_api.documents import hash_password as admin_hash_password
from meshgate.errors import ConfigError
from meshgate.plugins.basic_auth.handler import hash_password, parse_basic
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.snapshot import Consumer


def stored(password: str, consumer_id: str) -> str:
    """An independent statement of Kong's hash: hex SHA-1 of password .. consumer_id."""
    return hashlib.sha1((password + consumer_id).encode()).hexdigest()


ALICE = Consumer(
    id="c-alice",
    username="alice",
    credentials={
        "basicauth_credentials": (
            {"id": "b1", "username": "alice", "password": stored("open sesame", "c-alice")},
        )
    },
)
BOB = Consumer(
    id="c-bob",
    username="bob",
    credentials={
        "basicauth_credentials": (
            {"id": "b2", "username": "bob@example", "password": stored("pä:ss", "c-bob")},
            # a plain-text password (not hashed) must never match as it is
            {"id": "b3", "username": "plain", "password": "plaintext"},
        )
    },
)
GUEST = Consumer(id="c-guest", username="guest")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def run(config: dict[str, object] | None = None, **ctx_args: object):  # type: ignore[no-untyped-def]
    h = make_handler("basic-auth", config or {}, consumers=[ALICE, BOB, GUEST])
    ctx = FakeContext(**ctx_args)  # type: ignore[arg-type]
    return ctx, run_phases(h, ctx)


def message(res) -> str:  # type: ignore[no-untyped-def]
    return str(json.loads(res.body)["message"])


def test_defaults_and_config_errors() -> None:
    assert validate_plugin_config("basic-auth", {}) == {
        "anonymous": None,
        "hide_credentials": False,
        "realm": "service",
    }
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("basic-auth", {"realm": None, "hide_credentials": "x"})
    fields = caught.value.to_fields()
    assert set(fields) == {"config.realm", "config.hide_credentials"}


def test_hash_is_the_admin_apis() -> None:
    assert hash_password(b"pw", "cid") == admin_hash_password("pw", "cid") == stored("pw", "cid")


def test_valid_credentials_authenticate() -> None:
    ctx, res = run(headers={"Authorization": basic("alice", "open sesame")})
    assert res.exit is None
    assert ctx.consumer == ALICE
    up = ctx.upstream_headers()
    assert up["x-consumer-id"] == ["c-alice"]
    assert up["x-credential-identifier"] == ["alice"]  # Kong: the username
    assert up["authorization"] == [basic("alice", "open sesame")]


def test_password_with_colon_and_utf8() -> None:
    ctx, res = run(headers={"Authorization": basic("bob@example", "pä:ss")})
    assert res.exit is None
    assert ctx.consumer == BOB


def test_lowercase_scheme_accepted() -> None:
    value = basic("alice", "open sesame").replace("Basic", "basic")
    ctx, _res = run(headers={"Authorization": value})
    assert ctx.consumer == ALICE


def test_proxy_authorization_first_then_authorization() -> None:
    headers = {
        "Proxy-Authorization": basic("nobody", "x"),
        "Authorization": basic("alice", "open sesame"),
    }
    ctx, res = run(headers=headers)
    assert res.exit is None
    assert ctx.consumer == ALICE
    ctx, res = run(headers={"Proxy-Authorization": basic("alice", "open sesame")})
    assert res.exit is None
    assert ctx.consumer == ALICE


def test_hide_credentials() -> None:
    ctx, res = run(
        {"hide_credentials": True}, headers={"Authorization": basic("alice", "open sesame")}
    )
    assert res.exit is None
    assert "authorization" not in ctx.upstream_headers()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic("alice", "wrong")},
        {"Authorization": basic("nobody", "open sesame")},
        {"Authorization": basic("plain", "plaintext")},  # stored value is not a hash
        {"Authorization": basic("alice", stored("open sesame", "c-alice"))},  # pass-the-hash
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Basic " + base64.b64encode(b":nouser").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:\x80").decode()},
        {"Authorization": "Basic " + "QUFB" * 50_000},
        {"Authorization": "Bearer abc"},
        {"Authorization": "\xff\xfe\x00"},
    ],
)
def test_failures_are_401_unauthorized(headers: dict[str, str]) -> None:
    _, res = run(headers=headers)
    assert res.status == 401
    assert message(res) == "Unauthorized"
    assert res.headers["www-authenticate"] == ['Basic realm="service"']


def test_realm_configurable() -> None:
    _, res = run({"realm": "shop"})
    assert res.headers["www-authenticate"] == ['Basic realm="shop"']


def test_anonymous() -> None:
    ctx, res = run({"anonymous": "guest"}, headers={"Authorization": basic("alice", "bad")})
    assert res.exit is None
    assert ctx.consumer == GUEST
    assert ctx.upstream_headers()["x-anonymous-consumer"] == ["true"]
    _, res = run({"anonymous": "missing"})
    assert res.status == 500


def test_parse_basic() -> None:
    assert parse_basic(basic("u", "p:q")) == ("u", b"p:q")
    assert parse_basic("  basic   " + base64.b64encode(b"u:").decode()) == ("u", b"")
    assert parse_basic("Digest x") is None
