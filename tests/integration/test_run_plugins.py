"""Plugins through ``meshgate run``: configured in the file and via the Admin API, metrics served."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from test_run_with_store import admin

from testkit import EchoUpstreams, Gateway, free_port


def test_plugins_from_file_and_admin_api_and_metrics(
    tmp_path: Path, echo_upstreams: EchoUpstreams
) -> None:
    gw = Gateway(None, free_port(), "--store", f"sqlite:///{tmp_path}/m.db", workers=2)
    try:
        url = f"http://127.0.0.1:{echo_upstreams.ports[0]}"
        assert admin(gw, "POST", "/services", {"name": "s", "url": url})[0] == 201
        assert admin(gw, "POST", "/services/s/routes", {"name": "r", "paths": ["/p"]})[0] == 201
        assert (
            admin(
                gw,
                "POST",
                "/plugins",
                {"name": "prometheus", "config": {"status_code_metrics": True}},
            )[0]
            == 201
        )
        status, body = admin(gw, "POST", "/routes/r/plugins", {"name": "key-auth"})
        assert status == 201, body
        assert admin(gw, "POST", "/consumers", {"username": "ann"})[0] == 201
        assert admin(gw, "POST", "/consumers/ann/key-auth", {"key": "k-1"})[0] == 201
        status, _, body = gw.request("GET", "/p")
        assert status == 401
        got = gw.echo("/p", {"apikey": "k-1"})
        assert got["headers"]["x-consumer-username"] == "ann"
        status, body = admin(
            gw, "POST", "/plugins", {"name": "rate-limiting", "config": {"minute": "x"}}
        )
        assert status == 400
        assert "minute" in str(body["fields"])
        for _ in range(3):
            gw.echo("/p", {"apikey": "k-1"})
        # Counting across workers is covered by tests/plugins/test_plugins_cli_observability.py;
        # here: the Admin API serves the node's metrics, the workers' included.
        with urllib.request.urlopen(
            f"http://127.0.0.1:{gw.admin_port}/metrics", timeout=10
        ) as resp:
            text = resp.read().decode()
        pids = {ln.split('pid="')[1].split('"')[0] for ln in text.splitlines() if 'pid="' in ln}
        assert len(pids) >= 2, text[:2000]
    finally:
        gw.stop()
