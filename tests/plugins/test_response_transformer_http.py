"""response-transformer through a running gateway: headers and JSON body fields of the
upstream's answer are changed on the way to the client."""

from __future__ import annotations

from meshgate.proxy.filters.testing_http import live_gateway, plugin

CONFIG = {
    "remove": {"headers": ["x-upstream"], "json": ["headers"]},
    "rename": {"json": ["url:path"]},
    "add": {
        "headers": ["x-added:1"],
        "json": ["n:5", "flag:true"],
        "json_types": ["number", "boolean"],
    },
    "append": {"headers": ["x-added:2"]},
}


def test_response_headers_and_json_body_are_transformed() -> None:
    with live_gateway(plugins=[plugin("response-transformer", CONFIG, route="r1")]) as gw:
        res = gw.request("GET", "/r1/thing")
        assert res.status == 200, res.body
        assert res.header("x-upstream") is None
        assert res.headers.get_all("x-added") == ["1", "2"]
        body = res.json()
        assert "headers" not in body
        assert "url" not in body
        assert body["path"] == "/r1/thing"
        assert body["n"] == 5
        assert body["flag"] is True
        # another route without the plugin is untouched
        plain = gw.request("GET", "/r2/thing")
        assert plain.header("x-upstream") is not None
        assert "url" in plain.json()


def test_header_only_config_streams_the_body_unchanged() -> None:
    config = {"add": {"headers": ["x-h:1"]}}
    with live_gateway(plugins=[plugin("response-transformer", config, route="r1")]) as gw:
        res = gw.request("GET", "/r1/x")
        assert res.status == 200
        assert res.header("x-h") == "1"
        assert res.header("content-length") is not None  # no body phase: not re-chunked
        assert res.json()["url"] == "/r1/x"
