"""Auth plugins configured through the Admin API of a store-backed node (consumers and their
credentials posted to ``/consumers/{c}/<kind>``), proven with real HTTP through the proxy:
key-auth, basic-auth, jwt, hmac-auth, acl and oauth2-introspection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from plugins_admin_kit import AdminNode


def test_key_auth(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("key-auth", {"hide_credentials": True})
    admin_node.consumer("keyed", key_auth=[{"key": "keyed-secret"}])
    seen = admin_node.upstream_headers(path, {"apikey": "keyed-secret"})
    assert seen["x-consumer-username"] == "keyed"
    assert "apikey" not in seen
    status, headers, body = admin_node.json("GET", path)
    assert (status, body) == (401, {"message": "No API key found in request"})
    assert headers["www-authenticate"] == "Key"
    status, _, body = admin_node.json("GET", path, {"apikey": "wrong"})
    assert (status, body) == (401, {"message": "Unauthorized"})


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_auth_with_a_plain_password_hashed_by_the_admin_api(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("basic-auth", {"hide_credentials": True})
    consumer_id = admin_node.consumer(
        "basic", basic_auth=[{"username": "bob", "password": "open sesame"}]
    )
    seen = admin_node.upstream_headers(path, _basic("bob", "open sesame"))
    assert seen["x-consumer-id"] == consumer_id
    assert seen["x-credential-identifier"] == "bob"
    assert "authorization" not in seen
    status, headers, body = admin_node.json("GET", path, _basic("bob", "wrong"))
    assert (status, body) == (401, {"message": "Unauthorized"})
    assert headers["www-authenticate"] == 'Basic realm="service"'


JWT_SECRET = "a-jwt-secret-long-enough-for-hs256!"


def test_jwt_hs256(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("jwt", {"claims_to_verify": ["exp"]})
    admin_node.consumer("jwt-user", jwt=[{"key": "jwt-issuer", "secret": JWT_SECRET}])
    exp = int(time.time()) + 600
    good = jwt.encode({"iss": "jwt-issuer", "exp": exp}, JWT_SECRET, algorithm="HS256")
    seen = admin_node.upstream_headers(path, {"Authorization": f"Bearer {good}"})
    assert seen["x-consumer-username"] == "jwt-user"
    assert seen["x-credential-identifier"] == "jwt-issuer"
    forged = jwt.encode({"iss": "jwt-issuer", "exp": exp}, "x" * 32, algorithm="HS256")
    status, _, body = admin_node.json("GET", path, {"Authorization": f"Bearer {forged}"})
    assert (status, body) == (401, {"message": "Invalid signature"})
    expired = jwt.encode({"iss": "jwt-issuer", "exp": 1}, JWT_SECRET, algorithm="HS256")
    status, _, body = admin_node.json("GET", path, {"Authorization": f"Bearer {expired}"})
    assert (status, body) == (401, {"exp": "token expired"})
    assert admin_node.json("GET", path)[0] == 401


def _hmac_headers(method: str, target: str, body: bytes, secret: bytes) -> dict[str, str]:
    date = formatdate(usegmt=True)
    digest = "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    signing = f"date: {date}\n@request-target: {method.lower()} {target}\ndigest: {digest}"
    signature = base64.b64encode(hmac.new(secret, signing.encode(), hashlib.sha256).digest())
    return {
        "Date": date,
        "Digest": digest,
        "Authorization": (
            'hmac username="hmac-user", algorithm="hmac-sha256", '
            f'headers="date @request-target digest", signature="{signature.decode()}"'
        ),
    }


def test_hmac_auth_signed_request(admin_node: AdminNode) -> None:
    config = {"validate_request_body": True, "enforce_headers": ["date", "@request-target"],
              "hide_credentials": True}  # fmt: skip
    path = admin_node.plugin_route("hmac-auth", config)
    admin_node.consumer("hmac-user", hmac_auth=[{"username": "hmac-user", "secret": "hmac-key"}])
    body = b'{"amount": 10}'
    target = f"{path}/pay?x=1"
    headers = _hmac_headers("POST", target, body, b"hmac-key")
    status, _, answer = admin_node.json("POST", target, headers, body)
    assert status == 200, answer
    assert answer["headers"]["x-consumer-username"] == "hmac-user"
    assert "authorization" not in answer["headers"]
    status, _, answer = admin_node.json("POST", target, headers, b'{"amount": 99}')
    assert (status, answer) == (401, {"message": "HMAC signature does not match"})
    wrong_key = _hmac_headers("POST", target, body, b"other-key")
    assert admin_node.json("POST", target, wrong_key, body)[0] == 401


def test_acl_groups_after_key_auth(admin_node: AdminNode) -> None:
    path = admin_node.plugin_route("acl", {"allow": ["admins"]})
    admin_node.create("/routes/acl/plugins", {"name": "key-auth"})
    admin_node.consumer("acl-root", key_auth=[{"key": "root-key"}],
                        acls=[{"group": "admins"}, {"group": "ops"}])  # fmt: skip
    admin_node.consumer("acl-user", key_auth=[{"key": "user-key"}], acls=[{"group": "users"}])
    seen = admin_node.upstream_headers(path, {"apikey": "root-key"})
    assert sorted(seen["x-consumer-groups"].split(", ")) == ["admins", "ops"]
    status, _, body = admin_node.json("GET", path, {"apikey": "user-key"})
    assert (status, body) == (403, {"message": "You cannot consume this service"})
    denied = admin_node.plugin_route("acl", {"deny": ["users"]}, route="acl-deny")
    admin_node.create("/routes/acl-deny/plugins", {"name": "key-auth"})
    assert admin_node.json("GET", denied, {"apikey": "user-key"})[0] == 403
    assert admin_node.json("GET", denied, {"apikey": "root-key"})[0] == 200


TOKENS: dict[str, dict[str, Any]] = {
    "good-token": {"active": True, "username": "introspected", "scope": "read", "client_id": "app"}
}


@pytest.fixture
def idp() -> Iterator[tuple[str, list[str]]]:
    """An introspection endpoint: its URL and the tokens it was asked about."""
    calls: list[str] = []

    class Introspect(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            token = parse_qs(self.rfile.read(length).decode())["token"][0]
            calls.append(token)
            data = json.dumps(TOKENS.get(token, {"active": False})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Introspect)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/introspect", calls
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_oauth2_introspection(admin_node: AdminNode, idp: tuple[str, list[str]]) -> None:
    url, calls = idp
    config = {"introspection_url": url, "authorization_value": "Basic YXBwOnNlY3JldA=="}
    path = admin_node.plugin_route("oauth2-introspection", config)
    admin_node.consumer("introspected")
    for _ in range(2):
        seen = admin_node.upstream_headers(path, {"Authorization": "Bearer good-token"})
        assert seen["x-consumer-username"] == "introspected"
        assert seen["x-credential-scope"] == "read"
        assert "authorization" not in seen
    assert calls == ["good-token"]  # the answer is cached
    status, headers, body = admin_node.json("GET", path, {"Authorization": "Bearer bad"})
    assert (status, body["error"]) == (401, "invalid_token")
    assert 'error="invalid_token"' in headers["www-authenticate"]
