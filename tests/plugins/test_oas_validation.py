"""oas-validation: the document is compiled at config validation (bad documents refused at
config.api_spec), then path/method matching, path/query/header parameters with type
coercion, JSON bodies with $ref and nullable, verbose and notify-only modes, 3.1 documents."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, make_handler, run_phases

SPEC = """
openapi: 3.0.3
info: {title: pets, version: "1"}
servers: [{url: "https://api.example.com/v1"}]
paths:
  /pets:
    get:
      parameters:
        - {name: limit, in: query, schema: {type: integer, maximum: 100}}
        - {name: tags, in: query, schema: {type: array, items: {type: string, enum: [a, b]}}}
        - {name: X-Request-Id, in: header, required: true, schema: {type: string, pattern: "^[0-9a-f]{8}$"}}
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "#/components/schemas/Pet"}
  /pets/{petId}:
    parameters:
      - {name: petId, in: path, required: true, schema: {type: integer, minimum: 1}}
    get: {}
  /pets/mine:
    get: {}
components:
  schemas:
    Pet:
      type: object
      required: [name]
      properties:
        name: {type: string, minLength: 1}
        tag: {type: string, nullable: true}
        owner: {$ref: "#/components/schemas/Owner"}
    Owner:
      type: object
      properties:
        age: {type: integer, minimum: 0}
"""


def cfg(**extra: Any) -> dict[str, Any]:
    return {"api_spec": SPEC, "api_spec_encoded": False, "verbose_response": True, **extra}


def check(method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
          **config: Any) -> Any:  # fmt: skip
    handler = make_handler("oas-validation", cfg(**config))
    hdrs = {"x-request-id": "0123abcd", **(headers or {})}
    if body is not None:
        hdrs.setdefault("content-type", "application/json")
    return run_phases(handler, FakeContext(method, path, headers=hdrs, body=body))


def message(res: Any) -> str:
    assert res.exit is not None, res
    assert res.status == 400, res
    return str(json.loads(res.body)["message"])


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ("{not: valid: yaml", "not valid JSON or YAML"),
        ('{"swagger": "2.0", "paths": {}}', "Swagger 2.0 documents are not supported"),
        ("openapi: 3.0.0\ninfo: {}\n", "missing 'paths'"),
        ("openapi: 3.0.0\npaths: {/a: {get: {parameters: [{$ref: '#/nope'}]}}}", "unresolvable $ref"),
        ("openapi: 3.0.0\npaths: {/a: {get: {parameters: [{name: q, in: query, schema: {type: 7}}]}}}",
         "invalid schema"),
        ("[1, 2]", "expected an object"),
    ],
)  # fmt: skip
def test_bad_documents_are_refused_at_api_spec(spec: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_plugin_config("oas-validation", {"api_spec": spec, "api_spec_encoded": False})
    got = caught.value.to_fields()
    assert text in got.get("config.api_spec", ""), got


def test_defaults() -> None:
    got = validate_plugin_config(
        "oas-validation", {"api_spec": quote(SPEC)}
    )  # URI-encoded by default
    assert got["validate_request_body"]
    assert got["validate_request_query_params"]
    assert got["validate_request_header_params"]
    assert got["validate_request_uri_params"]
    assert not got["verbose_response"]
    assert not got["notify_only_request_validation_failure"]
    assert got["allowed_header_parameters"] == "Host,Content-Type,User-Agent,Accept,Content-Length"


# ------------------------------------------------------------------ requests


def test_valid_requests_pass() -> None:
    assert check("GET", "/pets?limit=10&tags=a&tags=b").exit is None
    assert check("GET", "/pets/12").exit is None
    assert check("GET", "/pets/mine").exit is None  # literal path wins over the template
    assert (
        check("POST", "/pets", body=b'{"name": "rex", "tag": null, "owner": {"age": 3}}').exit
        is None
    )


@pytest.mark.parametrize(
    ("method", "path", "headers", "expected"),
    [
        ("GET", "/nowhere", {}, "path '/nowhere' not found"),
        ("DELETE", "/pets", {}, "method 'DELETE' not allowed"),
        ("GET", "/pets?limit=abc", {}, "query 'limit' validation failed"),
        ("GET", "/pets?limit=1000", {}, "1000 is greater than the maximum of 100"),
        ("GET", "/pets?tags=c", {}, "query 'tags' validation failed"),
        ("GET", "/pets/0", {}, "path 'petId' validation failed"),
        ("GET", "/pets/x", {}, "path 'petId' validation failed"),
        ("GET", "/pets", {"x-request-id": "nope"}, "header 'x-request-id' validation failed"),
    ],
)
def test_invalid_parameters(method: str, path: str, headers: dict[str, str], expected: str) -> None:
    assert expected in message(check(method, path, headers=headers))


def test_missing_required_header() -> None:
    handler = make_handler("oas-validation", cfg())
    res = run_phases(handler, FakeContext("GET", "/pets"))
    assert message(res) == "header 'x-request-id' is required"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"tag": "x"}', '"name" is a required property'),
        (b'{"name": ""}', "/name:"),
        (b'{"name": "a", "owner": {"age": -1}}', "/owner/age: -1 is less than the minimum of 0"),
        (b'{"name": 5}', '/name: 5 is not of type "string"'),
        (b"{broken", "request body is not valid JSON"),
        (b"[" * 50000, "request body is not valid JSON"),
    ],
)
def test_invalid_bodies(body: bytes, expected: str) -> None:
    assert expected in message(check("POST", "/pets", body=body))


def test_missing_body_and_wrong_content_type() -> None:
    assert message(check("POST", "/pets")) == "request body is required"
    res = check("POST", "/pets", body=b"name=x", headers={"content-type": "text/plain"})
    assert "content-type 'text/plain' is not allowed" in message(res)


def test_not_verbose_says_little() -> None:
    res = check("GET", "/pets?limit=abc", verbose_response=False)
    assert json.loads(res.body) == {"message": "request doesn't conform to schema"}


def test_notify_only_lets_the_request_through(caplog: pytest.LogCaptureFixture) -> None:
    res = check("GET", "/pets?limit=abc", notify_only_request_validation_failure=True)
    assert res.exit is None
    assert "query 'limit' validation failed" in caplog.text


def test_switches_turn_parts_off() -> None:
    assert check("GET", "/pets?limit=abc", validate_request_query_params=False).exit is None
    assert check("GET", "/pets/0", validate_request_uri_params=False).exit is None
    assert check("GET", "/pets", headers={"x-request-id": "x"},
                 validate_request_header_params=False).exit is None  # fmt: skip
    assert check("POST", "/pets", body=b"{}", validate_request_body=False).exit is None
    assert make_handler("oas-validation", cfg(validate_request_body=False)).needs_body is False


def test_extra_parameter_checks() -> None:
    assert "query parameter 'debug'" in message(
        check("GET", "/pets?debug=1", query_parameter_check=True)
    )
    res = check("GET", "/pets", headers={"x-extra": "1"}, header_parameter_check=True)
    assert "header 'x-extra' is not defined" in message(res)


def test_base_paths() -> None:
    assert check("GET", "/v1/pets/3", include_base_path=True).exit is None
    assert "not found" in message(check("GET", "/pets/3", include_base_path=True))
    assert check("GET", "/api/pets/3", custom_base_path="/api").exit is None


def test_openapi_31_document() -> None:
    spec = json.dumps({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/things": {"post": {"requestBody": {"content": {"application/json": {
            "schema": {"type": "object", "properties": {"n": {"type": ["integer", "null"]}}}}}}}}},
    })  # fmt: skip
    handler = make_handler("oas-validation", {"api_spec": spec, "api_spec_encoded": False})
    ok = FakeContext(
        "POST", "/things", headers={"content-type": "application/json"}, body=b'{"n": null}'
    )
    bad = FakeContext(
        "POST", "/things", headers={"content-type": "application/json"}, body=b'{"n": "x"}'
    )
    assert run_phases(handler, ok).exit is None
    assert run_phases(handler, bad).status == 400


def test_per_request_cost() -> None:
    handler = make_handler("oas-validation", cfg())
    ctx = FakeContext("GET", "/pets/12?limit=5", headers={"x-request-id": "0123abcd"})
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        handler.access(ctx)  # type: ignore[attr-defined]
    assert (time.perf_counter() - started) / n * 1e6 < 1000
