"""key-auth through a running meshgate configured by a Kong declarative file."""

from __future__ import annotations

from pathlib import Path

from auth_http_kit import echo_service, gateway, refused, upstream_headers

from testkit import EchoUpstreams


def test_key_auth_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    document = {
        "services": [
            echo_service(
                echo_upstreams.ports[0],
                [
                    {
                        "name": "keyed",
                        "paths": ["/keyed"],
                        "plugins": [{"name": "key-auth", "config": {"hide_credentials": True}}],
                    },
                    {
                        "name": "open",
                        "paths": ["/open"],
                        "plugins": [{"name": "key-auth", "config": {"anonymous": "guest"}}],
                    },
                ],
            )
        ],
        "consumers": [
            {"username": "alice", "keyauth_credentials": [{"key": "alice-key"}]},
            {"username": "guest"},
        ],
    }
    with gateway(tmp_path, document) as gw:
        seen = upstream_headers(gw, "/keyed/x", {"apikey": "alice-key"})
        assert seen["x-consumer-username"] == "alice"
        assert "apikey" not in seen  # hidden
        assert (
            upstream_headers(gw, "/keyed/x?apikey=alice-key", {})["x-consumer-username"] == "alice"
        )
        status, headers, body = refused(gw, "/keyed/x")
        assert (status, body) == (401, {"message": "No API key found in request"})
        assert headers["www-authenticate"] == "Key"
        status, _, body = refused(gw, "/keyed/x", {"apikey": "wrong"})
        assert (status, body) == (401, {"message": "Unauthorized"})
        status, _, body = refused(gw, "/keyed/x", {"apikey": "\xff\xfe" + "k" * 6000})
        assert status == 401
        seen = upstream_headers(gw, "/open/x", {})
        assert seen["x-consumer-username"] == "guest"
        assert seen["x-anonymous-consumer"] == "true"
