"""Where ``meshgate config dump|apply|diff`` read and write: a running node or a store.

A running node is reached through its Admin API (``GET/POST /config``); a store (SQLite file or
PostgreSQL) is opened directly, the way a node would.  Both speak Kong's declarative format.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import typer
import yaml

from meshgate.controlplane.admin_api import apply_declarative
from meshgate.errors import ConfigError, Violation
from meshgate.resources.declarative import dump_dict
from meshgate.resources.from_entities import config_from_entities
from meshgate.store import open_store


class ConfigTarget:
    """A node's Admin API (``admin``) or a config store (``store``)."""

    def __init__(self, admin: str | None, store: str | None, token: str | None) -> None:
        if (admin is None) == (store is None):
            raise typer.BadParameter("name exactly one of --admin URL or --store URL")
        self.admin = admin.rstrip("/") if admin else None
        self.store = store
        self.token = token

    def dump(self) -> dict[str, Any]:
        """The target's whole gateway config as a declarative document."""
        if self.admin is not None:
            status, body = self._call("GET", "/config?format=json")
            if status != 200:
                raise ConfigError.single(f"GET /config answered {status}: {body}")
            result: dict[str, Any] = json.loads(body)
            return result
        return asyncio.run(self._dump_store())

    def apply(self, document: dict[str, Any]) -> str:
        """Replace the target's config with ``document`` (all or nothing); returns a summary."""
        if self.admin is not None:
            status, body = self._call("POST", "/config", json.dumps(document).encode())
            if status == 201:
                return _loaded_summary(body)
            try:
                fields = json.loads(body).get("fields") or {}
            except ValueError:
                fields = {}
            raise ConfigError(
                [Violation(path, str(msg)) for path, msg in _flatten(fields)]
                or [Violation("", f"POST /config answered {status}: {body}")]
            )
        return asyncio.run(self._apply_store(document))

    async def _dump_store(self) -> dict[str, Any]:
        assert self.store is not None
        store = await open_store(self.store)
        try:
            dump = await store.dump_all()
            return dump_dict(config_from_entities(dump.entities))
        finally:
            await store.close()

    async def _apply_store(self, document: dict[str, Any]) -> str:
        assert self.store is not None
        store = await open_store(self.store)
        try:
            revision = await apply_declarative(store, document)
            return f"applied as revision {revision}"
        finally:
            await store.close()

    def _call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Kong-Admin-Token"] = self.token
        req = urllib.request.Request(
            f"{self.admin}{path}", data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            raise ConfigError.single(f"cannot reach {self.admin}: {exc}") from exc


def _flatten(fields: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Kong's nested ``fields`` (records, arrays with ``null`` for valid items, ``@entity``
    lists of an entity's own errors) as (path, message) pairs."""
    if isinstance(fields, dict):
        out: list[tuple[str, Any]] = []
        for key, value in fields.items():
            path = prefix if key == "@entity" else f"{prefix}.{key}" if prefix else str(key)
            out += _flatten(value, path)
        return out
    if isinstance(fields, list):
        if all(isinstance(item, str) for item in fields):
            return [(prefix, item) for item in fields]
        out = []
        for index, item in enumerate(fields):
            if item is not None:
                out += _flatten(item, f"{prefix}[{index}]")
        return out
    return [(prefix, fields)]


def _loaded_summary(body: str) -> str:
    """``POST /config``'s answer (the loaded entities by type and id) as counts."""
    try:
        loaded = json.loads(body)
    except ValueError:
        return body
    if not isinstance(loaded, dict):
        return body
    counts = [f"{len(v)} {k}" for k, v in loaded.items() if isinstance(v, dict) and v]
    return "loaded " + (", ".join(counts) if counts else "an empty configuration")


def entity_map(document: dict[str, Any]) -> dict[str, str]:
    """``kind/name-or-id`` -> canonical YAML of each top-level entity (ids and times left out)."""
    out: dict[str, str] = {}
    for kind, items in document.items():
        if kind.startswith("_") or not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            label = item.get("name") or item.get("username") or item.get("target") or item.get("id")
            clean = _without_volatile(item)
            out[f"{kind}/{label}"] = yaml.safe_dump(clean, sort_keys=True)
    return out


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_volatile(v)
            for k, v in value.items()
            if k not in ("id", "created_at", "updated_at")
        }
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value
