"""acl after key-auth through a running meshgate configured by a Kong declarative file."""

from __future__ import annotations

from pathlib import Path

from auth_http_kit import echo_service, gateway, refused, upstream_headers

from testkit import EchoUpstreams


def test_acl_over_http(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    document = {
        "services": [
            echo_service(
                echo_upstreams.ports[0],
                [
                    {
                        "name": "admin",
                        "paths": ["/admin"],
                        "plugins": [
                            {"name": "key-auth"},
                            {"name": "acl", "config": {"allow": ["admins"]}},
                        ],
                    }
                ],
            )
        ],
        "consumers": [
            {
                "username": "root",
                "keyauth_credentials": [{"key": "root-key"}],
                "acls": [{"group": "admins"}, {"group": "ops"}],
            },
            {
                "username": "user",
                "keyauth_credentials": [{"key": "user-key"}],
                "acls": [{"group": "users"}],
            },
        ],
    }
    with gateway(tmp_path, document) as gw:
        seen = upstream_headers(gw, "/admin", {"apikey": "root-key"})
        assert sorted(seen["x-consumer-groups"].split(", ")) == ["admins", "ops"]
        status, _, body = refused(gw, "/admin", {"apikey": "user-key"})
        assert (status, body) == (403, {"message": "You cannot consume this service"})
        status, _, body = refused(gw, "/admin")
        assert (status, body) == (401, {"message": "No API key found in request"})
