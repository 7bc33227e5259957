"""basic-auth through a running meshgate configured by a Kong declarative file.

Passwords are stored as Kong stores them (hex SHA-1 of password .. consumer id).  A file
with ``_transform: false`` carries such hashes (a Kong export); with ``_transform: true``
(the default) plain passwords are hashed on import, as Kong does.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from auth_http_kit import echo_service, gateway, refused, upstream_headers

from testkit import EchoUpstreams

ALICE_ID = "5b1b5e2c-3c9f-4f53-9a1d-1f3e0b7a9c11"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def document(port: int, password: str, transform: bool) -> dict[str, Any]:
    return {
        "_transform": transform,
        "services": [
            echo_service(
                port,
                [
                    {
                        "name": "basic",
                        "paths": ["/basic"],
                        "plugins": [{"name": "basic-auth", "config": {"hide_credentials": True}}],
                    }
                ],
            )
        ],
        "consumers": [
            {
                "id": ALICE_ID,
                "username": "alice",
                "basicauth_credentials": [{"username": "alice", "password": password}],
            }
        ],
    }


def test_basic_auth_over_http_with_kong_hashes(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    hashed = hashlib.sha1(("open sesame" + ALICE_ID).encode()).hexdigest()
    with gateway(tmp_path, document(echo_upstreams.ports[0], hashed, transform=False)) as gw:
        seen = upstream_headers(gw, "/basic", basic("alice", "open sesame"))
        assert seen["x-consumer-id"] == ALICE_ID
        assert seen["x-credential-identifier"] == "alice"
        assert "authorization" not in seen
        status, headers, body = refused(gw, "/basic", basic("alice", "wrong"))
        assert (status, body) == (401, {"message": "Unauthorized"})
        assert headers["www-authenticate"] == 'Basic realm="service"'
        status, _, _ = refused(gw, "/basic", basic("alice", hashed))  # pass-the-hash
        assert status == 401
        status, _, _ = refused(gw, "/basic", {"Authorization": "Basic %%%"})
        assert status == 401


def test_basic_auth_plain_password_in_transformed_file(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    with gateway(tmp_path, document(echo_upstreams.ports[0], "open sesame", transform=True)) as gw:
        seen = upstream_headers(gw, "/basic", basic("alice", "open sesame"))
        assert seen["x-consumer-id"] == ALICE_ID
        status, _, _ = refused(gw, "/basic", basic("alice", "open sesamE"))
        assert status == 401
