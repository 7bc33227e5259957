"""``meshgate run`` on a config store: Admin API writes reach the proxies before the answer."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from testkit import EchoUpstreams, Gateway, free_port


def admin(
    gw: Gateway, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"http://127.0.0.1:{gw.admin_port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def test_admin_writes_are_live_when_answered(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    gw = Gateway(None, free_port(), "--store", f"sqlite:///{tmp_path}/meshgate.db", workers=2)
    try:
        assert gw.request("GET", "/svc")[0] == 404
        status, svc = admin(
            gw,
            "POST",
            "/services",
            {"name": "svc", "url": f"http://127.0.0.1:{echo_upstreams.ports[0]}"},
        )
        assert status == 201, svc
        status, route = admin(gw, "POST", "/services/svc/routes", {"name": "r", "paths": ["/svc"]})
        assert status == 201, route
        # No sleep: the 201 came after both workers applied the new snapshot.
        for _ in range(4):
            assert gw.echo("/svc/x")["upstream"] == "echo-1"
        status, body = admin(gw, "PATCH", "/routes/r", {"paths": ["/other"]})
        assert status == 200, body
        assert gw.request("GET", "/svc/x")[0] == 404
        assert gw.echo("/other/y")["url"] == "/y"
        status, body = admin(gw, "POST", "/routes", {"name": "bad", "paths": ["nope"]})
        assert status == 400
        assert "paths" in json.dumps(body["fields"])
        assert gw.echo("/other/y")["url"] == "/y"  # the running config is untouched
    finally:
        gw.stop()


def test_db_less_admin_is_read_only(tmp_path: Path, echo_upstreams: EchoUpstreams) -> None:
    cfg = tmp_path / "kong.yaml"
    cfg.write_text(
        '_format_version: "3.0"\nservices:\n'
        f"  - name: a\n    url: http://127.0.0.1:{echo_upstreams.ports[1]}\n"
        "    routes: [{name: a, paths: [/a]}]\n"
    )
    gw = Gateway(cfg, free_port())
    try:
        status, body = admin(gw, "GET", "/services/a")
        assert status == 200
        assert body["host"] == "127.0.0.1"
        status, body = admin(gw, "POST", "/services", {"name": "b", "url": "http://x"})
        assert status == 405
        assert "DB-less" in body["message"]
        assert gw.echo("/a")["upstream"] == "echo-2"
        status, doc = admin(gw, "GET", "/asyncapi.json")
        assert status == 200
        assert doc["asyncapi"] == "3.0.0"
    finally:
        gw.stop()


@pytest.mark.services
def test_two_nodes_on_one_postgres_converge(echo_upstreams: EchoUpstreams) -> None:
    dsn = os.environ.get("MESHGATE_TEST_PG_DSN")
    if not dsn:
        pytest.skip('MESHGATE_TEST_PG_DSN is unset: run `eval "$(bash scripts/services/env.sh)"`')
    import psycopg

    schema = f"it_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{dsn}?options=-csearch_path%3D{schema}"
    one = Gateway(None, free_port(), "--store", url)
    two = Gateway(None, free_port(), "--store", url)
    try:
        status, _ = admin(
            one,
            "POST",
            "/services",
            {"name": "s", "url": f"http://127.0.0.1:{echo_upstreams.ports[0]}"},
        )
        assert status == 201
        assert admin(one, "POST", "/services/s/routes", {"paths": ["/pg"]})[0] == 201
        started = time.monotonic()
        while two.request("GET", "/pg")[0] != 200:
            assert time.monotonic() - started < 1.0, "node two did not converge within a second"
            time.sleep(0.02)
        assert admin(two, "GET", "/services/s")[0] == 200
    finally:
        one.stop()
        two.stop()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
