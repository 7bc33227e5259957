"""oas-validation through a running gateway: valid requests reach the upstream, invalid ones
get 400 from the gateway with the validation error."""

from __future__ import annotations

from meshgate.proxy.filters.testing_http import live_gateway, plugin

SPEC = """
openapi: 3.0.3
info: {title: r1, version: "1"}
paths:
  /r1/items/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: integer}}]
    get: {}
    put:
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [name], properties: {name: {type: string}}}
"""


def test_requests_are_validated() -> None:
    config = {"api_spec": SPEC, "api_spec_encoded": False, "verbose_response": True}
    with live_gateway(plugins=[plugin("oas-validation", config, route="r1")]) as gw:
        assert gw.request("GET", "/r1/items/5").status == 200
        bad = gw.request("GET", "/r1/items/abc")
        assert bad.status == 400
        assert "path 'id' validation failed" in bad.json()["message"]
        ok = gw.request("PUT", "/r1/items/5", headers={"content-type": "application/json"},
                        body=b'{"name": "x"}')  # fmt: skip
        assert ok.status == 200
        assert ok.json()["body_bytes"] == 13
        bad = gw.request("PUT", "/r1/items/5", headers={"content-type": "application/json"},
                         body=b'{"name": 1}')  # fmt: skip
        assert bad.status == 400
        assert bad.json()["message"].startswith("request body validation failed with error")
