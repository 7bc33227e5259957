"""jwt with FakeContext: every algorithm family, Kong's error messages, claims, token
locations, anonymous, malformed tokens (never a 500)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases
from meshgate.snapshot import Consumer

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC256_KEY = ec.generate_private_key(ec.SECP256R1())
EC384_KEY = ec.generate_private_key(ec.SECP384R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def pem(private_key: Any) -> str:
    return str(
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_HASH = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def sign(claims: dict[str, Any], alg: str = "HS256", key: Any = b"hs-secret", **header: Any) -> str:
    head = b64(json.dumps({"typ": "JWT", "alg": alg, **header}).encode())
    body = b64(json.dumps(claims).encode())
    data = f"{head}.{body}".encode()
    if alg.startswith("HS"):
        sig = hmac.new(key, data, getattr(hashlib, "sha" + alg[2:])).digest()
    elif alg.startswith("RS"):
        sig = key.sign(data, padding.PKCS1v15(), _HASH[alg[2:]]())
    elif alg.startswith("PS"):
        h = _HASH[alg[2:]]()
        sig = key.sign(data, padding.PSS(padding.MGF1(h), padding.PSS.DIGEST_LENGTH), h)
    elif alg.startswith("ES"):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_HASH[alg[2:]]())))
        size = key.curve.key_size // 8 + (1 if key.curve.key_size % 8 else 0)
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        sig = key.sign(data)
    return f"{head}.{body}.{b64(sig)}"


def cred(id_: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"id": id_, "key": key, **fields}


ALICE = Consumer(
    id="c-alice",
    username="alice",
    credentials={
        "jwt_secrets": (
            cred("j1", "alice-iss", secret="hs-secret"),  # algorithm left out: HS256
            cred("j2", "alice-384", secret="hs-secret", algorithm="HS384"),
            cred("j3", "alice-512", secret="hs-secret", algorithm="HS512"),
        )
    },
)
BOB = Consumer(
    id="c-bob",
    username="bob",
    credentials={
        "jwt_secrets": (
            cred("j4", "rs256", secret="x", algorithm="RS256", rsa_public_key=pem(RSA_KEY)),
            cred("j5", "rs384", secret="x", algorithm="RS384", rsa_public_key=pem(RSA_KEY)),
            cred("j6", "rs512", secret="x", algorithm="RS512", rsa_public_key=pem(RSA_KEY)),
            cred("j7", "es256", secret="x", algorithm="ES256", rsa_public_key=pem(EC256_KEY)),
            cred("j8", "es384", secret="x", algorithm="ES384", rsa_public_key=pem(EC384_KEY)),
            cred("j9", "ps256", secret="x", algorithm="PS256", rsa_public_key=pem(RSA_KEY)),
            cred("j10", "eddsa", secret="x", algorithm="EdDSA", rsa_public_key=pem(ED_KEY)),
            cred("j11", "no-pem", secret="x", algorithm="RS256"),
            cred("j12", "bad-pem", secret="x", algorithm="RS256", rsa_public_key="garbage"),
            cred("j13", "ec-as-rsa", secret="x", algorithm="RS256", rsa_public_key=pem(EC256_KEY)),
        )
    },
)
# RFC 7515 appendix A.1: an independent HS256 vector (binary key, given base64url)
RFC_KEY = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
RFC_TOKEN = (
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
JOE = Consumer(
    id="c-joe", username="joe", credentials={"jwt_secrets": (cred("j0", "joe", secret=RFC_KEY),)}
)
GUEST = Consumer(id="c-guest", username="guest")
CONSUMERS = [ALICE, BOB, JOE, GUEST]


def run(token: str | None = None, config: dict[str, Any] | None = None, **ctx_args: Any):  # type: ignore[no-untyped-def]
    if token is not None:
        ctx_args.setdefault("headers", {"Authorization": f"Bearer {token}"})
    ctx = FakeContext(**ctx_args)
    res = run_phases(make_handler("jwt", config or {}, consumers=CONSUMERS), ctx)
    return ctx, res


def body(res) -> Any:  # type: ignore[no-untyped-def]
    return json.loads(res.body)


INVALID_WWW = ['Bearer error="invalid_token"']

# --------------------------------------------------------------------------- config


def test_defaults_are_kongs() -> None:
    assert validate_plugin_config("jwt", {}) == {
        "uri_param_names": ["jwt"],
        "cookie_names": [],
        "header_names": ["authorization"],
        "key_claim_name": "iss",
        "secret_is_base64": False,
        "claims_to_verify": None,
        "anonymous": None,
        "run_on_preflight": True,
        "maximum_expiration": 0,
        "realm": None,
    }


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"claims_to_verify": ["iat"]}, "config.claims_to_verify.0"),
        ({"maximum_expiration": -1}, "config.maximum_expiration"),
        ({"maximum_expiration": 31536001}, "config.maximum_expiration"),
        ({"maximum_expiration": 60}, "config"),  # needs exp in claims_to_verify
        ({"key_claim_name": ""}, "config.key_claim_name"),
        ({"uri_param_names": "jwt"}, "config.uri_param_names"),
    ],
)
def test_config_errors(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("jwt", config)
    assert field in caught.value.to_fields(), caught.value.to_fields()


def test_sets_are_deduplicated() -> None:
    out = validate_plugin_config("jwt", {"claims_to_verify": ["exp", "exp", "nbf"]})
    assert out["claims_to_verify"] == ["exp", "nbf"]


# --------------------------------------------------------------------------- algorithms


@pytest.mark.parametrize(
    ("alg", "iss", "key", "consumer"),
    [
        ("HS256", "alice-iss", b"hs-secret", ALICE),
        ("HS384", "alice-384", b"hs-secret", ALICE),
        ("HS512", "alice-512", b"hs-secret", ALICE),
        ("RS256", "rs256", RSA_KEY, BOB),
        ("RS384", "rs384", RSA_KEY, BOB),
        ("RS512", "rs512", RSA_KEY, BOB),
        ("ES256", "es256", EC256_KEY, BOB),
        ("ES384", "es384", EC384_KEY, BOB),
        ("PS256", "ps256", RSA_KEY, BOB),
        ("EdDSA", "eddsa", ED_KEY, BOB),
    ],
)
def test_algorithms_verify(alg: str, iss: str, key: Any, consumer: Consumer) -> None:
    token = sign({"iss": iss, "sub": "x"}, alg, key)
    ctx, res = run(token)
    assert res.exit is None, res.body
    assert ctx.consumer == consumer
    up = ctx.upstream_headers()
    assert up["x-credential-identifier"] == [iss]  # Kong: the credential's key
    assert ctx.shared["authenticated_jwt_token"] == token
    # one flipped signature byte fails
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[len(raw) // 2] ^= 1
    _, res = run(f"{head}.{payload}.{b64(bytes(raw))}")
    assert res.status == 401
    assert body(res) == {"message": "Invalid signature"}


def test_rfc7515_vector_with_base64_secret() -> None:
    ctx, res = run(RFC_TOKEN, {"secret_is_base64": True})
    assert res.exit is None
    assert ctx.consumer == JOE
    _, res = run(RFC_TOKEN)  # the secret taken literally does not verify
    assert body(res) == {"message": "Invalid signature"}
    _, res = run(RFC_TOKEN, {"secret_is_base64": True, "claims_to_verify": ["exp"]})
    assert res.status == 401
    assert body(res) == {"exp": "token expired"}


def test_wrong_algorithm_for_credential() -> None:
    _, res = run(sign({"iss": "alice-iss"}, "HS512"))
    assert body(res) == {"message": "Invalid algorithm"}
    _, res = run(sign({"iss": "rs256"}, "HS256", pem(RSA_KEY).encode()))  # key confusion
    assert body(res) == {"message": "Invalid algorithm"}


def test_unusable_public_keys() -> None:
    for iss in ("no-pem", "bad-pem", "ec-as-rsa"):
        _, res = run(sign({"iss": iss}, "RS256", RSA_KEY))
        assert res.status == 401, iss
        assert body(res) == {"message": "Invalid key/secret"}, iss


def test_es256_signature_of_wrong_size() -> None:
    token = sign({"iss": "es256"}, "ES256", EC256_KEY)
    head, payload, _ = token.split(".")
    _, res = run(f"{head}.{payload}.{b64(b'x' * 63)}")
    assert body(res) == {"message": "Invalid signature"}


# --------------------------------------------------------------------------- claims


def test_claims_exp_and_nbf() -> None:
    now = int(time.time())
    conf = {"claims_to_verify": ["exp", "nbf"]}
    _, res = run(sign({"iss": "alice-iss", "exp": now + 60, "nbf": now - 1}), conf)
    assert res.exit is None
    _, res = run(sign({"iss": "alice-iss", "exp": now - 1, "nbf": now + 60}), conf)
    assert res.status == 401
    assert body(res) == {"exp": "token expired", "nbf": "token not valid yet"}
    assert res.headers["www-authenticate"] == INVALID_WWW
    _, res = run(sign({"iss": "alice-iss", "exp": "soon", "nbf": True}), conf)
    assert body(res) == {"exp": "must be a number", "nbf": "must be a number"}
    _ctx, res = run(sign({"iss": "alice-iss", "exp": now - 100}))  # not verified by default
    assert res.exit is None


def test_maximum_expiration() -> None:
    now = int(time.time())
    conf = {"claims_to_verify": ["exp"], "maximum_expiration": 600}
    _, res = run(sign({"iss": "alice-iss", "exp": now + 300}), conf)
    assert res.exit is None
    _, res = run(sign({"iss": "alice-iss", "exp": now + 3600}), conf)
    assert body(res) == {"exp": "exceeds maximum allowed expiration"}


def test_key_claim_from_header_and_custom_name() -> None:
    ctx, _ = run(sign({"sub": "x"}, kid="alice-iss"), {"key_claim_name": "kid"})
    assert ctx.consumer == ALICE
    ctx, _res = run(sign({"sub": "x"}, iss="alice-iss"))  # iss in the JOSE header
    assert ctx.consumer == ALICE


def test_key_claim_problems() -> None:
    _, res = run(sign({"sub": "x"}))
    assert body(res) == {"message": "No mandatory 'iss' in claims"}
    _, res = run(sign({"iss": ""}))
    assert body(res) == {"message": "Invalid 'iss' in claims"}
    _, res = run(sign({"iss": "stranger"}))
    assert body(res) == {"message": "No credentials found for given 'iss'"}
    _, res = run(sign({"iss": 42}))
    assert body(res) == {"message": "No credentials found for given 'iss'"}
    _, res = run(sign({"sub": "x"}), {"key_claim_name": "kid"})
    assert body(res) == {"message": "No mandatory 'kid' in claims"}


# --------------------------------------------------------------------------- where tokens are


def test_token_locations() -> None:
    token = sign({"iss": "alice-iss"})
    ctx, res = run(path=f"/x?jwt={token}")
    assert ctx.consumer == ALICE
    ctx, res = run(
        headers={"Cookie": f"a=b; session={token}"}, config={"cookie_names": ["session"]}
    )
    assert ctx.consumer == ALICE
    ctx, res = run(headers={"X-Token": f"bearer {token}"}, config={"header_names": ["x-token"]})
    assert ctx.consumer == ALICE
    _, res = run(headers={"Cookie": f"session={token}"})  # cookies not read by default
    assert res.status == 401
    assert body(res) == {"message": "Unauthorized"}


def test_same_token_twice_is_one_token_but_two_differ() -> None:
    token = sign({"iss": "alice-iss"})
    _ctx, res = run(path=f"/?jwt={token}", headers={"Authorization": f"Bearer {token}"})
    assert res.exit is None
    other = sign({"iss": "alice-iss", "x": 1})
    _, res = run(path=f"/?jwt={other}", headers={"Authorization": f"Bearer {token}"})
    assert body(res) == {"message": "Multiple tokens provided"}
    assert res.headers["www-authenticate"] == INVALID_WWW


def test_no_token_is_plain_unauthorized() -> None:
    _, res = run()
    assert res.status == 401
    assert body(res) == {"message": "Unauthorized"}
    assert res.headers["www-authenticate"] == ["Bearer"]
    _, res = run(config={"realm": "api"})
    assert res.headers["www-authenticate"] == ['Bearer realm="api"']
    _, res = run(headers={"Authorization": "Basic abc"})
    assert body(res) == {"message": "Unauthorized"}


# --------------------------------------------------------------------------- malformed tokens

GOOD = sign({"iss": "alice-iss"})
GOOD_HEAD, GOOD_BODY, GOOD_SIG = GOOD.split(".")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("abc", "invalid JSON"),
        ("a.b", "invalid JSON"),
        ("!!!.@@@.###", "invalid JSON"),
        (f"{b64(b'not json')}.{GOOD_BODY}.{GOOD_SIG}", "invalid JSON"),
        (f"{b64(b'[1,2]')}.{GOOD_BODY}.{GOOD_SIG}", "invalid JSON"),
        (f"{b64(b'{}')}.{GOOD_BODY}.{GOOD_SIG}", "invalid alg"),
        (f"{b64(json.dumps({'alg': 'none'}).encode())}.{GOOD_BODY}.", "invalid alg"),
        (f"{b64(json.dumps({'alg': 7}).encode())}.{GOOD_BODY}.{GOOD_SIG}", "invalid alg"),
        (f"{GOOD_HEAD}.{b64(b'null')}.{GOOD_SIG}", "invalid JSON"),
        (f"{GOOD_HEAD}.{b64(b'[' * 50_000)}.{GOOD_SIG}", "invalid JSON"),
        (f"{GOOD_HEAD}.{GOOD_BODY}.not*base64", "invalid signature"),
        ("\xff\xfe\x80.\xc3\x28.\xa0", "invalid JSON"),
        ("A" * 100_000 + ".e30.e30", "invalid JSON"),
    ],
)
def test_bad_tokens(token: str, reason: str) -> None:
    _, res = run(token)
    assert res.status == 401
    assert body(res) == {"message": f"Bad token; {reason}"}
    assert res.headers["www-authenticate"] == INVALID_WWW


def test_extra_dots_go_to_the_signature() -> None:
    _, res = run(GOOD + ".extra")
    assert res.status == 401
    assert body(res)["message"].startswith("Bad token")


# --------------------------------------------------------------------------- flow


def test_anonymous_and_preflight() -> None:
    ctx, res = run("junk", {"anonymous": "guest"})
    assert res.exit is None
    assert ctx.consumer == GUEST
    assert ctx.upstream_headers()["x-anonymous-consumer"] == ["true"]
    ctx, res = run(config={"run_on_preflight": False}, method="OPTIONS")
    assert res.exit is None
    assert ctx.consumer is None
    _, res = run(method="OPTIONS")
    assert res.status == 401


def test_verifier_is_loaded_once_per_credential() -> None:
    h = make_handler("jwt", {}, consumers=CONSUMERS)
    token = sign({"iss": "rs256"}, "RS256", RSA_KEY)
    for _ in range(3):
        ctx = FakeContext(headers={"Authorization": f"Bearer {token}"})
        assert run_phases(h, ctx).exit is None
    assert list(h.verifiers) == ["j4|rs256"]  # type: ignore[attr-defined]


def test_verified_tokens_are_remembered_but_claims_rechecked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = make_handler("jwt", {"claims_to_verify": ["exp"]}, consumers=CONSUMERS)
    exp = time.time() + 60
    token = sign({"iss": "rs256", "exp": exp}, "RS256", RSA_KEY)
    ctx = FakeContext(headers={"Authorization": f"Bearer {token}"})
    assert run_phases(h, ctx).exit is None
    assert token in h.verified  # type: ignore[attr-defined]
    monkeypatch.setattr(
        "meshgate.plugins.jwt.handler.decode", lambda _: pytest.fail("decoded again")
    )
    ctx = FakeContext(headers={"Authorization": f"Bearer {token}"})
    assert run_phases(h, ctx).exit is None
    assert ctx.consumer == BOB
    monkeypatch.setattr("meshgate.plugins.jwt.handler.time.time", lambda: exp + 1)
    res = run_phases(h, FakeContext(headers={"Authorization": f"Bearer {token}"}))
    assert body(res) == {"exp": "token expired"}


def test_verified_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("meshgate.plugins.jwt.handler.MAX_VERIFIED", 3)
    h = make_handler("jwt", {}, consumers=CONSUMERS)
    tokens = [sign({"iss": "alice-iss", "n": n}) for n in range(5)]
    for token in tokens:
        assert run_phases(h, FakeContext(headers={"Authorization": f"Bearer {token}"})).exit is None
    assert list(h.verified) == tokens[2:]  # type: ignore[attr-defined]
