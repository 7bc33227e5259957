"""request-size-limiting: config, Content-Length checks, counted chunked bodies, 411/413/417."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import validate_plugin_config
from meshgate.proxy.filters.testing import FakeContext, PhaseResult, make_handler, run_phases


def _send(config: dict[str, Any], body: bytes | None = None, **headers: str) -> PhaseResult:
    handler = make_handler("request-size-limiting", config)
    pairs = {k.replace("_", "-"): v for k, v in headers.items()}
    ctx = FakeContext("POST", "/upload", headers=pairs, body=body)
    return run_phases(handler, ctx, upstream=(201, {}, b"stored"))


def test_defaults_and_validation() -> None:
    conf = validate_plugin_config("request-size-limiting", {})
    assert conf == {
        "allowed_payload_size": 128,
        "size_unit": "megabytes",
        "require_content_length": False,
    }
    for bad in ({"size_unit": "gigabytes"}, {"allowed_payload_size": -1},
                {"allowed_payload_size": "x"}, {"extra": 1}):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            validate_plugin_config("request-size-limiting", bad)
        assert next(iter(info.value.to_fields())).startswith("config.")


@pytest.mark.parametrize(
    ("unit", "allowed", "size", "status"),
    [
        ("bytes", 10, 10, 201),
        ("bytes", 10, 11, 413),
        ("kilobytes", 1, 1024, 201),
        ("kilobytes", 1, 1025, 413),
        ("megabytes", 1, 1048576, 201),
        ("megabytes", 1, 1048577, 413),
    ],
)
def test_content_length_against_the_limit(unit: str, allowed: int, size: int, status: int) -> None:
    result = _send({"allowed_payload_size": allowed, "size_unit": unit}, b"x" * size)
    assert result.status == status
    if status == 413:
        assert json.loads(result.body) == {"message": "Request size limit exceeded"}


def test_expect_continue_gets_417() -> None:
    result = _send({"allowed_payload_size": 1, "size_unit": "bytes"}, b"xx", expect="100-Continue")
    assert result.status == 417
    assert json.loads(result.body) == {"message": "Request size limit exceeded"}


def test_declared_length_is_checked_before_the_body() -> None:
    handler = make_handler(
        "request-size-limiting", {"allowed_payload_size": 5, "size_unit": "bytes"}
    )
    ctx = FakeContext("POST", "/", headers={"Content-Length": "999999999999"}, body=b"")
    assert run_phases(handler, ctx).status == 413


def test_chunked_bodies_are_counted() -> None:
    config = {"allowed_payload_size": 8, "size_unit": "bytes", "require_content_length": True}
    ok = _send(config, b"12345678", transfer_encoding="chunked")
    assert ok.status == 201
    too_big = _send(config, b"123456789", transfer_encoding="chunked")
    assert too_big.status == 413


def test_require_content_length() -> None:
    config = {"require_content_length": True}
    result = _send(config)
    assert result.status == 411
    assert json.loads(result.body) == {"message": "A valid Content-Length header is required"}
    assert _send(config, b"fine").status == 201
    assert _send({}).status == 201  # not required: no body is fine


def test_handler_asks_the_engine_for_a_bounded_body() -> None:
    handler = make_handler(
        "request-size-limiting", {"allowed_payload_size": 2, "size_unit": "kilobytes"}
    )
    assert handler.needs_body is True
    assert handler.body_limit == 2048
