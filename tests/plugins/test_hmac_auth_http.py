"""hmac-auth through a running meshgate configured by a Kong declarative file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from email.utils import formatdate
from pathlib import Path

from auth_http_kit import echo_service, gateway, refused

from testkit import EchoUpstreams


def signed_headers(method: str, target: str, body: bytes) -> dict[str, str]:
    date = formatdate(usegmt=True)
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    signing = f"date: {date}\n@request-target: {method.lower()} {target}\ndigest: {digest}"
    signature = base64.b64encode(
        hmac.new(b"hmac-secret", signing.encode(), hashlib.sha256).digest()
    )
    return {
        "Date": date,
        "Digest": digest,
        "Authorization": (
            'hmac username="alice", algorithm="hmac-sha256", '
            f'headers="date @request-target digest", signature="{signature.decode()}"'
        ),
    }


def test_hmac_auth_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    document = {
        "services": [
            echo_service(
                echo_upstreams.ports[0],
                [
                    {
                        "name": "signed",
                        "paths": ["/signed"],
                        "plugins": [
                            {
                                "name": "hmac-auth",
                                "config": {
                                    "validate_request_body": True,
                                    "enforce_headers": ["date", "@request-target"],
                                    "hide_credentials": True,
                                },
                            }
                        ],
                    }
                ],
            )
        ],
        "consumers": [
            {
                "username": "alice",
                "hmacauth_credentials": [{"username": "alice", "secret": "hmac-secret"}],
            }
        ],
    }
    body = b'{"amount": 10}'
    with gateway(tmp_path, document) as gw:
        headers = signed_headers("POST", "/signed/pay?x=1", body)
        status, _, answer = gw.request("POST", "/signed/pay?x=1", headers, body)
        assert status == 200, answer
        seen = json.loads(answer)["headers"]
        assert seen["x-consumer-username"] == "alice"
        assert seen["x-credential-identifier"] == "alice"
        assert "authorization" not in seen
        status, _, answer = gw.request("POST", "/signed/pay?x=1", headers, b'{"amount": 99}')
        assert (status, json.loads(answer)) == (401, {"message": "HMAC signature does not match"})
        status, _, answer = gw.request("POST", "/signed/pay?x=2", headers, body)
        assert status == 401
        status, headers_out, answer_json = refused(
            gw, "/signed/pay", {"Date": formatdate(usegmt=True)}
        )
        assert (status, answer_json) == (401, {"message": "Unauthorized"})
        assert headers_out["www-authenticate"] == "hmac"
