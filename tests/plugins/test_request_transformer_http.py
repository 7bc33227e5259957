"""request-transformer through a running gateway: headers, query, URI and JSON body reach
the upstream changed; a bad JSON body gets 400 from the gateway."""

from __future__ import annotations

import json

from meshgate.proxy.filters.testing_http import live_gateway, plugin, route

CONFIG = {
    "remove": {"headers": ["x-secret"], "querystring": ["token"]},
    "rename": {"headers": ["x-old:x-new"]},
    "add": {"headers": ["x-user:$(uri_captures.user)"], "querystring": ["v:2"],
            "body": ["source:gw"]},
    "replace": {"uri": "/r1/users/$(uri_captures.user)"},
}  # fmt: skip


def test_request_is_transformed_on_the_way_upstream() -> None:
    routes = [route("r1", "~/r1/u/(?<user>\\w+)$")]
    with live_gateway(plugins=[plugin("request-transformer", CONFIG, route="r1")],
                      routes=routes) as gw:  # fmt: skip
        res = gw.request(
            "POST", "/r1/u/alice?token=t&keep=1",
            headers={"x-secret": "s", "x-old": "o", "content-type": "application/json"},
            body=b'{"a":1}',
        )  # fmt: skip
        assert res.status == 200, res.body
        seen = res.json()
        assert seen["url"] == "/r1/users/alice?keep=1&v=2"
        assert "x-secret" not in seen["headers"]
        assert seen["headers"]["x-new"] == "o"
        assert "x-old" not in seen["headers"]
        assert seen["headers"]["x-user"] == "alice"
        assert seen["body_bytes"] == len(b'{"a":1,"source":"gw"}')
        assert seen["headers"]["content-length"] == str(seen["body_bytes"])

        res = gw.request("POST", "/r1/u/bob", headers={"content-type": "application/json"},
                         body=b"{broken")  # fmt: skip
        assert res.status == 400
        assert res.json() == {"message": "request body is not valid JSON"}


def test_transformed_body_is_what_later_plugins_and_upstream_get() -> None:
    plugins = [
        plugin("request-transformer", {"add": {"body": ["k:v"]}, "remove": {"body": ["drop"]}},
               route="r2"),
        plugin("request-termination", {"echo": True, "status_code": 200}, route="r2"),
    ]  # fmt: skip
    with live_gateway(plugins=plugins) as gw:
        res = gw.request("POST", "/r2", headers={"content-type": "application/json"},
                         body=b'{"drop":1,"x":2}')  # fmt: skip
        assert res.status == 200
        assert json.loads(res.json()["request"]["raw_body"]) == {"x": 2, "k": "v"}
