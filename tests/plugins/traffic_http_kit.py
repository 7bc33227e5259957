"""Real-HTTP helpers for the traffic/security plugin tests: a Kong declarative file in front of
an echo upstream, ``meshgate run -c`` on it (optionally several workers), and
bursts of concurrent requests."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from testkit import Gateway, free_port

Reply = tuple[int, dict[str, str], bytes]


def kong_file(tmp_path: Path, upstream_port: int, routes: list[dict[str, Any]],
              name: str = "kong.yaml", **top: Any) -> Path:  # fmt: skip
    """A declarative file: one service on the echo upstream with ``routes``."""
    document = {
        "_format_version": "3.0",
        "services": [{"name": "echo", "url": f"http://127.0.0.1:{upstream_port}",
                      "routes": routes}],
        **top,
    }  # fmt: skip
    path = tmp_path / name
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


@contextmanager
def gateways(config: Path, count: int = 1, workers: int = 1) -> Iterator[list[Gateway]]:
    """``count`` gateway nodes on ``config``, each with ``workers`` processes."""
    with ExitStack() as stack:
        nodes: list[Gateway] = []
        for _ in range(count):
            gw = Gateway(config, free_port(), workers=workers)
            nodes.append(gw)
            stack.callback(_stop, gw)
        yield nodes


def _stop(gw: Gateway) -> None:
    log = gw.stop()
    assert "Traceback" not in log, log


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
            body: bytes | list[bytes] | None = None) -> Reply:  # fmt: skip
    """One request on a new connection; a list body is sent chunked, one chunk per item."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        if isinstance(body, list):
            conn.request(method, path, body=iter(body), headers=headers or {},
                         encode_chunked=True)  # fmt: skip
        else:
            conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def burst(
    ports: list[int], count: int, path: str, headers: dict[str, str] | None = None
) -> list[Reply]:
    """``count`` requests sent at once (one connection each, spread over ``ports``)."""
    start = threading.Barrier(count)

    def one(i: int) -> Reply:
        start.wait(15)
        return request(ports[i % len(ports)], "GET", path, headers)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))
