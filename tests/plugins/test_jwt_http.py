"""jwt through a running meshgate configured by a Kong declarative file (HS256 and RS256)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

from auth_http_kit import echo_service, gateway, refused, upstream_headers
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from testkit import EchoUpstreams

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims: dict[str, object], alg: str) -> str:
    signing_input = (
        f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    )
    if alg == "HS256":
        sig = hmac.new(b"shh", signing_input.encode(), hashlib.sha256).digest()
    else:
        sig = RSA_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(sig)}"


def test_jwt_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    public_pem = (
        RSA_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    document = {
        "services": [
            echo_service(
                echo_upstreams.ports[0],
                [
                    {
                        "name": "jwt",
                        "paths": ["/jwt"],
                        "plugins": [{"name": "jwt", "config": {"claims_to_verify": ["exp"]}}],
                    }
                ],
            )
        ],
        "consumers": [
            {"username": "hs", "jwt_secrets": [{"key": "hs-issuer", "secret": "shh"}]},
            {
                "username": "rs",
                "jwt_secrets": [
                    {
                        "key": "rs-issuer",
                        "secret": "unused",
                        "algorithm": "RS256",
                        "rsa_public_key": public_pem,
                    }
                ],
            },
        ],
    }
    exp = int(time.time()) + 600
    with gateway(tmp_path, document) as gw:
        hs = token({"iss": "hs-issuer", "exp": exp}, "HS256")
        seen = upstream_headers(gw, "/jwt", {"Authorization": f"Bearer {hs}"})
        assert seen["x-consumer-username"] == "hs"
        assert seen["x-credential-identifier"] == "hs-issuer"
        rs = token({"iss": "rs-issuer", "exp": exp}, "RS256")
        assert upstream_headers(gw, f"/jwt?jwt={rs}", {})["x-consumer-username"] == "rs"
        expired = token({"iss": "hs-issuer", "exp": 1}, "HS256")
        status, headers, body = refused(gw, "/jwt", {"Authorization": f"Bearer {expired}"})
        assert (status, body) == (401, {"exp": "token expired"})
        assert headers["www-authenticate"] == 'Bearer error="invalid_token"'
        status, _, body = refused(gw, "/jwt", {"Authorization": "Bearer a.b.c"})
        assert (status, body) == (401, {"message": "Bad token; invalid JSON"})
        status, _, body = refused(gw, "/jwt", {"Authorization": "Bearer " + "\xff" * 3000})
        assert status == 401
        status, _, body = refused(gw, "/jwt")
        assert (status, body) == (401, {"message": "Unauthorized"})
