"""Random store changes for the live-apply tests: flat entity documents as the Admin API
writes them, and a seeded generator of change sets (valid and invalid ones)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from typing import Any

from meshgate.resources import load_dict
from meshgate.resources.from_entities import entities_from_config

Key = tuple[str, str]
Docs = dict[Key, dict[str, Any]]


def base_docs(routes: int = 12) -> Docs:
    """Two services (one on an upstream), an upstream with targets, routes and plugins."""
    document = {
        "_format_version": "3.0",
        "services": [
            {
                "name": "alpha",
                "url": "http://127.0.0.1:9001",
                "routes": [
                    {"name": f"r{i}", "paths": [f"/r{i}"], "hosts": [f"h{i % 3}.test"]}
                    for i in range(routes)
                ],
            },
            {"name": "beta", "host": "pool", "port": 80},
        ],
        "upstreams": [
            {
                "name": "pool",
                "targets": [{"target": "127.0.0.1:9101"}, {"target": "127.0.0.1:9102"}],
            }
        ],
        "plugins": [{"name": "correlation-id"}],
    }
    docs: Docs = {}
    for kind, doc in entities_from_config(load_dict(document)):
        docs[(kind, doc["id"])] = doc
    return docs


class ChangeMaker:
    """Seeded random change sets over ``docs``; ``commit`` makes one the new state."""

    def __init__(self, docs: Docs, seed: int) -> None:
        self.docs = docs
        self.rng = random.Random(seed)
        self.clock = 10_000

    def ids(self, kind: str) -> list[str]:
        return [entity_id for (k, entity_id) in self.docs if k == kind]

    def _new(self, kind: str, **fields: Any) -> tuple[Key, dict[str, Any]]:
        self.clock += 1
        entity_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        doc = {"id": entity_id, "created_at": self.clock, "updated_at": self.clock, **fields}
        return (kind, entity_id), doc

    def _edit(self, kind: str, **fields: Any) -> tuple[Key, dict[str, Any]] | None:
        ids = self.ids(kind)
        if not ids:
            return None
        key = (kind, self.rng.choice(ids))
        return key, {**self.docs[key], **fields}

    def change(self) -> dict[Key, dict[str, Any] | None]:
        """One change set, as a store revision's change feed would name it."""
        rng = self.rng
        services = self.ids("services")
        op = rng.choice(
            ["route+", "route~", "route~", "route-", "route-dup", "route-bad", "service~",
             "service-off", "target+", "target-", "plugin+", "plugin-", "service-", "upstream~"]
        )  # fmt: skip
        delta: dict[Key, dict[str, Any] | None] = {}
        n = rng.randrange(1000)
        if op == "route+":
            key, doc = self._new(
                "routes", name=f"n{n}", paths=[f"/n{n}"], hosts=[], strip_path=True,
                service={"id": rng.choice(services)} if services else None,
            )  # fmt: skip
            delta[key] = doc
        elif op in ("route~", "route-dup", "route-bad"):
            value: dict[str, Any] = {"paths": [f"/p{n}", f"/q{n}"]}
            if op == "route-dup" and len(self.ids("routes")) > 1:
                other = self.docs[("routes", self.rng.choice(self.ids("routes")))]
                value = {"name": other["name"]}
            elif op == "route-bad":
                value = {"paths": ["no-slash"], "regex_priority": "high"}
            edited = self._edit("routes", **value)
            if edited is not None:
                delta[edited[0]] = edited[1]
        elif op == "route-":
            for entity_id in rng.sample(self.ids("routes"), min(2, len(self.ids("routes")))):
                delta[("routes", entity_id)] = None
                delta.update(self._plugins_of("route", entity_id))
        elif op == "service~":
            edited = self._edit(
                "services", read_timeout=1000 + n, host=rng.choice(["pool", "10.0.0.1"])
            )
            if edited is not None:
                delta[edited[0]] = edited[1]
        elif op == "service-off":
            edited = self._edit("services", enabled=rng.random() < 0.5)
            if edited is not None:
                delta[edited[0]] = edited[1]
        elif op == "service-" and services:
            victim = rng.choice(services)
            delta[("services", victim)] = None
            if rng.random() < 0.7:  # else the routes still refer to it: refused
                for (kind, entity_id), doc in self.docs.items():
                    if kind == "routes" and (doc.get("service") or {}).get("id") == victim:
                        delta[(kind, entity_id)] = None
                        delta.update(self._plugins_of("route", entity_id))
                delta.update(self._plugins_of("service", victim))
        elif op == "target+":
            upstreams = self.ids("upstreams")
            if upstreams:
                key, doc = self._new(
                    "targets",
                    upstream={"id": upstreams[0]},
                    target=f"127.0.0.1:{9200 + n}",
                    weight=n % 7,
                )
                delta[key] = doc
        elif op == "target-" and self.ids("targets"):
            delta[("targets", rng.choice(self.ids("targets")))] = None
        elif op == "plugin+":
            routes = self.ids("routes")
            scoped = routes and rng.random() < 0.8
            key, doc = self._new(
                "plugins", name=rng.choice(["correlation-id", "cors"]), config={},
                protocols=["grpc", "grpcs", "http", "https"], enabled=True, service=None,
                consumer=None, route={"id": rng.choice(routes)} if scoped else None,
            )  # fmt: skip
            delta[key] = doc
        elif op == "plugin-" and self.ids("plugins"):
            delta[("plugins", rng.choice(self.ids("plugins")))] = None
        elif op == "upstream~":
            edited = self._edit("upstreams", slots=100 + n)
            if edited is not None:
                delta[edited[0]] = edited[1]
        return delta

    def _plugins_of(self, field: str, entity_id: str) -> dict[Key, None]:
        return {
            key: None
            for key, doc in self.docs.items()
            if key[0] == "plugins" and (doc.get(field) or {}).get("id") == entity_id
        }

    def commit(self, delta: Mapping[Key, dict[str, Any] | None]) -> None:
        for key, doc in delta.items():
            if doc is None:
                self.docs.pop(key, None)
            else:
                self.docs[key] = doc

    def preview(self, delta: Mapping[Key, dict[str, Any] | None]) -> Docs:
        """The documents ``delta`` would leave, in store order."""
        docs = dict(self.docs)
        for key, doc in delta.items():
            if doc is None:
                docs.pop(key, None)
            else:
                docs[key] = doc
        return docs


def as_entities(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    return [(kind, doc) for (kind, _), doc in docs.items()]
