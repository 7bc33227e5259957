"""A store-backed ``meshgate run --store sqlite:///...`` node configured only through its
Admin API, in front of an echo upstream: each plugin gets a route ``/p-<name>`` of its own on
the ``echo`` service, so one node serves a whole test module."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meshgate.demo.upstreams import start_echo_upstream
from testkit import BackgroundLoop, Gateway, free_port

Reply = tuple[int, dict[str, str], bytes]


class AdminNode:
    """The node, its echo upstream and Admin API helpers that assert every write succeeded."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._loop = BackgroundLoop()
        self._echo, self.echo_counters = self._loop.run(start_echo_upstream("echo-admin"))
        self.echo_port: int = self._echo.sockets[0].getsockname()[1]
        self.gw = Gateway(None, free_port(), "--store", f"sqlite:///{tmp}/meshgate.db")
        self.create("/services", {"name": "echo", "url": f"http://127.0.0.1:{self.echo_port}"})

    @property
    def port(self) -> int:
        return self.gw.port

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """Status and JSON answer (``None`` when empty) of one Admin API call."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.gw.admin_port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, raw.decode("latin-1")

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST an entity; the node has applied it once the 201 is back."""
        status, answer = self.admin("POST", path, body)
        assert status == 201, (path, status, answer)
        assert isinstance(answer, dict)
        return answer

    def plugin_route(
        self, name: str, config: dict[str, Any] | None = None, *, route: str | None = None,
        service: str | None = "echo", **route_fields: Any,
    ) -> str:  # fmt: skip
        """A route ``/p-<route or name>`` with plugin ``name`` on it; returns the path."""
        route_name = route or name
        path = f"/p-{route_name}"
        fields = {"name": route_name, "paths": [path], **route_fields}
        where = f"/services/{service}/routes" if service else "/routes"
        self.create(where, fields)
        plugin: dict[str, Any] = {"name": name}
        if config is not None:
            plugin["config"] = config
        created = self.create(f"/routes/{route_name}/plugins", plugin)
        assert created["name"] == name
        return path

    def consumer(self, username: str, **credentials: list[dict[str, Any]]) -> str:
        """A consumer with credentials by endpoint (``key_auth=[{...}]`` posts to
        ``/consumers/<username>/key-auth``); returns its id."""
        consumer_id: str = self.create("/consumers", {"username": username})["id"]
        for kind, entries in credentials.items():
            for entry in entries:
                self.create(f"/consumers/{username}/{kind.replace('_', '-')}", entry)
        return consumer_id

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> Reply:  # fmt: skip
        """One request on a fresh connection."""
        return self.gw.request(method, path, headers, body)

    def json(self, method: str, path: str, headers: dict[str, str] | None = None,
             body: bytes | None = None) -> tuple[int, dict[str, str], Any]:  # fmt: skip
        status, headers_out, raw = self.request(method, path, headers, body)
        return status, headers_out, json.loads(raw) if raw else None

    def upstream_headers(self, path: str, headers: dict[str, str] | None = None) -> dict[str, str]:
        """The headers the echo upstream got (asserting the request reached it)."""
        status, _, answer = self.json("GET", path, headers)
        assert status == 200, (status, answer)
        seen: dict[str, str] = answer["headers"]
        return seen

    def close(self) -> None:
        log = self.gw.stop()

        async def close_echo() -> None:
            self._echo.close()

        self._loop.run(close_echo())
        self._loop.close()
        assert "Traceback" not in log, log
