"""key-auth with FakeContext: config rules, where keys are found, Kong's 401s, anonymous,
hide_credentials, hostile input."""

from __future__ import annotations

import json
import time

import pytest

from meshgate.errors import ConfigError
from meshgate.plugins._auth import SecretIndex
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.snapshot import Consumer

ALICE = Consumer(
    id="c-alice",
    username="alice",
    custom_id="A1",
    credentials={"keyauth_credentials": ({"id": "k1", "key": "alice-key"},)},
)
BOB = Consumer(
    id="c-bob",
    username="bob",
    credentials={
        "keyauth_credentials": (
            {"id": "k2", "key": "bob-key"},
            {"id": "k3", "key": "expired", "ttl": 10, "created_at": time.time() - 60},
            {"id": "k4", "key": "fresh", "ttl": 3600, "created_at": time.time()},
            {"id": "k5", "key": "clé-ünï"},
        )
    },
)
GUEST = Consumer(id="c-guest", username="guest")
CONSUMERS = [ALICE, BOB, GUEST]


def handler(**config: object):  # type: ignore[no-untyped-def]
    return make_handler("key-auth", config, consumers=CONSUMERS)


def run(config: dict[str, object] | None = None, **ctx_args: object):  # type: ignore[no-untyped-def]
    ctx = FakeContext(**ctx_args)  # type: ignore[arg-type]
    return ctx, run_phases(handler(**(config or {})), ctx)


def message(res) -> str:  # type: ignore[no-untyped-def]
    return str(json.loads(res.body)["message"])


# --------------------------------------------------------------------------- config


def test_defaults_are_kongs() -> None:
    assert validate_plugin_config("key-auth", {}) == {
        "key_names": ["apikey"],
        "hide_credentials": False,
        "anonymous": None,
        "key_in_header": True,
        "key_in_query": True,
        "key_in_body": False,
        "run_on_preflight": True,
        "realm": None,
    }


@pytest.mark.parametrize(
    ("config", "field", "text"),
    [
        ({"key_names": ["bad name"]}, "config.key_names.0", "bad header name 'bad name'"),
        ({"key_names": [""]}, "config.key_names.0", "no header name provided"),
        ({"key_names": []}, "config.key_names", "at least 1"),
        ({"hide_credentials": "maybe"}, "config.hide_credentials", "boolean"),
        ({"key_in_body": 3}, "config.key_in_body", "boolean"),
        ({"colour": "red"}, "config.colour", "unknown field"),
    ],
)
def test_config_errors(config: dict[str, object], field: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("key-auth", config)
    fields = caught.value.to_fields()
    assert field in fields, fields
    assert text in fields[field], fields


# --------------------------------------------------------------------------- finding keys


def test_key_in_header_authenticates() -> None:
    ctx, res = run(headers={"apikey": "alice-key"})
    assert res.exit is None
    assert ctx.consumer == ALICE
    up = ctx.upstream_headers()
    assert up["x-consumer-id"] == ["c-alice"]
    assert up["x-consumer-username"] == ["alice"]
    assert up["x-consumer-custom-id"] == ["A1"]
    assert up["x-credential-identifier"] == ["k1"]
    assert "x-anonymous-consumer" not in up
    assert up["apikey"] == ["alice-key"]  # not hidden by default


def test_key_in_query_and_names_in_order() -> None:
    ctx, res = run({"key_names": ["token", "apikey"]}, path="/x?apikey=bob-key")
    assert res.exit is None
    assert ctx.consumer == BOB
    ctx, res = run({"key_names": ["token", "apikey"]}, path="/x?apikey=bob-key&token=alice-key")
    assert ctx.consumer == ALICE  # the first key name wins


def test_header_underscore_name_matches_dash_header() -> None:
    ctx, res = run({"key_names": ["api_key"]}, headers={"Api-Key": "alice-key"})
    assert res.exit is None
    assert ctx.consumer == ALICE


def test_sources_can_be_disabled() -> None:
    _, res = run({"key_in_header": False}, headers={"apikey": "alice-key"})
    assert res.status == 401
    assert message(res) == "No API key found in request"
    _, res = run({"key_in_query": False}, path="/?apikey=alice-key")
    assert res.status == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"apikey=alice-key&x=1", "application/x-www-form-urlencoded"),
        (b'{"apikey": "alice-key", "x": 1}', "application/json"),
        (
            b'--XyZ\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="apikey"\r\n\r\nalice-key\r\n'
            b"--XyZ--\r\n",
            "multipart/form-data; boundary=XyZ",
        ),
    ],
)
def test_key_in_body_and_hidden(body: bytes, content_type: str) -> None:
    config = {"key_in_body": True, "hide_credentials": True}
    ctx = FakeContext("POST", "/", headers={"Content-Type": content_type}, body=body)
    res = run_phases(handler(**config), ctx)
    assert res.exit is None
    assert ctx.consumer == ALICE
    assert b"alice-key" not in ctx.forwarded_body
    assert b"x" in ctx.forwarded_body


def test_key_in_body_off_by_default() -> None:
    ctx = FakeContext(
        "POST", "/", headers={"Content-Type": "application/json"}, body=b'{"apikey":"alice-key"}'
    )
    res = run_phases(handler(), ctx)
    assert res.status == 401


def test_hide_credentials_strips_header_and_query_arg() -> None:
    ctx, res = run({"hide_credentials": True}, headers={"apikey": "alice-key"})
    assert res.exit is None
    assert "apikey" not in ctx.upstream_headers()
    ctx, res = run({"hide_credentials": True}, path="/p?a=1&apikey=alice-key&b=%20x")
    assert res.exit is None
    assert ctx.upstream_query == "a=1&b=%20x"


def test_run_on_preflight_false_lets_options_through() -> None:
    ctx, res = run({"run_on_preflight": False}, method="OPTIONS")
    assert res.exit is None
    assert ctx.consumer is None
    _, res = run(method="OPTIONS")
    assert res.status == 401


def test_ttl_expired_key_is_refused() -> None:
    _, res = run(headers={"apikey": "expired"})
    assert res.status == 401
    assert message(res) == "Unauthorized"
    ctx, res = run(headers={"apikey": "fresh"})
    assert res.exit is None
    assert ctx.consumer == BOB


def test_non_ascii_key_sent_as_utf8_bytes() -> None:
    # the engine hands header bytes over as latin-1 text
    raw = "clé-ünï".encode().decode("latin-1")
    ctx, res = run(headers={"apikey": raw})
    assert res.exit is None
    assert ctx.consumer == BOB


# --------------------------------------------------------------------------- failures


def test_missing_key_is_401_with_www_authenticate() -> None:
    _, res = run()
    assert res.status == 401
    assert message(res) == "No API key found in request"
    assert res.headers["www-authenticate"] == ["Key"]


def test_realm_in_www_authenticate() -> None:
    _, res = run({"realm": "orders"}, headers={"apikey": "nope"})
    assert res.headers["www-authenticate"] == ['Key realm="orders"']


def test_invalid_key_is_401_unauthorized() -> None:
    _, res = run(headers={"apikey": "alice-kez"})
    assert res.status == 401
    assert message(res) == "Unauthorized"
    assert res.headers["www-authenticate"] == ["Key"]


def test_empty_key_is_no_key() -> None:
    _, res = run(headers={"apikey": ""})
    assert res.status == 401
    assert message(res) == "No API key found in request"


def test_duplicate_keys_are_refused() -> None:
    _, res = run(headers=[("apikey", "alice-key"), ("apikey", "bob-key")])
    assert res.status == 401
    assert message(res) == "Duplicate API key found"
    _, res = run(path="/?apikey=alice-key&apikey=alice-key")
    assert res.status == 401
    assert message(res) == "Duplicate API key found"


@pytest.mark.parametrize(
    "value",
    [
        "\xff\xfe\x80garbage",  # non-UTF-8 bytes
        "x" * 200_000,  # giant
        "alice-key\x00",
        "' OR 1=1 --",
    ],
)
def test_hostile_keys_are_plain_401(value: str) -> None:
    _, res = run(headers={"apikey": value})
    assert res.status == 401
    assert message(res) == "Unauthorized"


def test_malformed_bodies_are_no_key() -> None:
    for content_type, body in [
        ("application/json", b'{"apikey": '),
        ("application/json", b"[" * 100_000),
        ("application/json", b'{"apikey": 12}'),
        ("multipart/form-data", b"--x\r\n"),
        ("application/x-www-form-urlencoded", b"\xff\xfe=%%%"),
    ]:
        ctx = FakeContext("POST", "/", headers={"Content-Type": content_type}, body=body)
        res = run_phases(handler(key_in_body=True), ctx)
        assert res.status == 401, (content_type, body)
        assert message(res) == "No API key found in request"


# --------------------------------------------------------------------------- anonymous


def test_anonymous_by_username_on_failure() -> None:
    ctx, res = run({"anonymous": "guest"}, headers={"apikey": "wrong"})
    assert res.exit is None
    assert ctx.consumer == GUEST
    assert ctx.credential is None
    up = ctx.upstream_headers()
    assert up["x-anonymous-consumer"] == ["true"]
    assert up["x-consumer-id"] == ["c-guest"]
    assert "x-credential-identifier" not in up


def test_anonymous_by_id_and_success_still_wins() -> None:
    ctx, _ = run({"anonymous": "c-guest"})
    assert ctx.consumer == GUEST
    ctx, _res = run({"anonymous": "c-guest"}, headers={"apikey": "bob-key"})
    assert ctx.consumer == BOB
    assert "x-anonymous-consumer" not in ctx.upstream_headers()


def test_anonymous_skips_when_already_authenticated() -> None:
    ctx = FakeContext(consumer=BOB, credential={"id": "other"}, headers={"apikey": "alice-key"})
    res = run_phases(handler(anonymous="guest"), ctx)
    assert res.exit is None
    assert ctx.consumer == BOB


def test_missing_anonymous_consumer_is_500_with_kongs_message() -> None:
    _, res = run({"anonymous": "ghost"})
    assert res.status == 500
    assert message(res) == "anonymous consumer ghost is configured but doesn't exist"


def test_without_anonymous_an_earlier_auth_does_not_excuse() -> None:
    ctx = FakeContext(consumer=BOB, credential={"id": "other"})
    res = run_phases(handler(), ctx)
    assert res.status == 401  # logical AND


# --------------------------------------------------------------------------- the index


def test_secret_index_confirms_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac as hmac_module

    calls: list[tuple[bytes, bytes]] = []
    real = hmac_module.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("meshgate.plugins._auth.hmac.compare_digest", spy)
    index: SecretIndex[str] = SecretIndex()
    index.add("s3cret", "record")
    assert index.find("s3cret") == "record"
    assert index.find("s3cres") is None
    assert calls == [(b"s3cret", b"s3cret")]  # only a dict hit reaches the comparison
