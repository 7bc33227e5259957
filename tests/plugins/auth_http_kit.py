"""Real-HTTP helpers for the auth plugin tests: write a Kong declarative file whose service is
an echo upstream, start ``meshgate run -c`` on it, and talk to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testkit import Gateway, free_port


def echo_service(port: int, routes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "echo", "url": f"http://127.0.0.1:{port}", "routes": routes}


@contextmanager
def gateway(tmp_path: Path, document: dict[str, Any]) -> Iterator[Gateway]:
    """A running gateway configured by ``document`` (written as JSON, which is YAML)."""
    path = tmp_path / "kong.yaml"
    path.write_text(json.dumps({"_format_version": "3.0", **document}))
    gw = Gateway(path, free_port())
    try:
        yield gw
    finally:
        log = gw.stop()
        assert "Traceback" not in log, log


def upstream_headers(gw: Gateway, path: str, headers: dict[str, str]) -> dict[str, str]:
    """The headers the echo upstream received (asserting the request got through)."""
    status, _, body = gw.request("GET", path, headers)
    assert status == 200, (status, body)
    received: dict[str, str] = json.loads(body)["headers"]
    return received


def refused(
    gw: Gateway, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of a request the gateway answered itself."""
    status, response_headers, body = gw.request("GET", path, headers)
    return status, response_headers, json.loads(body)
