"""The contract every ``Store`` backend keeps; each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from meshgate.store import (
    Change,
    EntityWrite,
    InvalidOffset,
    InvalidQuery,
    NotFound,
    Store,
    UniqueViolation,
    composite_key,
    open_store,
)
from meshgate.store.common import filter_path, matches_filter

Body = Callable[[Store], Awaitable[None]]


def run(url: str, body: Body) -> None:
    async def main() -> None:
        store = await open_store(url)
        try:
            await body(store)
        finally:
            await store.close()

    asyncio.run(main())


def service(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "host": f"{name}.internal", "port": 80, **fields}


def keys(doc: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [("name", doc.get("name"))]


def test_crud_roundtrip(store_url: str) -> None:
    async def body(store: Store) -> None:
        created = await store.insert(
            "services", service("a", tags=["t"]), unique_keys=[("name", "a")]
        )
        uuid.UUID(created["id"])  # a generated id is a UUID
        assert await store.get("services", created["id"]) == created
        assert await store.get_by_key("services", "name", "a") == created
        assert await store.get("routes", created["id"]) is None
        assert await store.get_by_key("services", "name", "b") is None

        renamed = await store.update(
            "services", created["id"], service("b", port=81), unique_keys=[("name", "b")]
        )
        assert renamed["id"] == created["id"]
        assert await store.get("services", created["id"]) == renamed
        assert await store.get_by_key("services", "name", "a") is None
        assert (await store.get_by_key("services", "name", "b") or {})["port"] == 81

        given_id = str(uuid.uuid4())
        upserted = await store.upsert(
            "services", given_id, service("c"), unique_keys=[("name", "c")]
        )
        assert upserted["id"] == given_id
        replaced = await store.upsert(
            "services", given_id, service("c", port=9), unique_keys=[("name", "c")]
        )
        assert (await store.get("services", given_id)) == replaced
        assert replaced["port"] == 9

        assert await store.delete("services", given_id) is True
        assert await store.delete("services", given_id) is False
        assert await store.get("services", given_id) is None
        assert await store.get_by_key("services", "name", "c") is None
        with pytest.raises(NotFound):
            await store.update("services", given_id, service("c"), unique_keys=[])

    run(store_url, body)


def test_unique_violations(store_url: str) -> None:
    async def body(store: Store) -> None:
        first = await store.insert("services", service("a"), unique_keys=[("name", "a")])
        with pytest.raises(UniqueViolation) as clash:
            await store.insert("services", service("a"), unique_keys=[("name", "a")])
        assert (clash.value.entity_type, clash.value.key_name, clash.value.value) == (
            "services",
            "name",
            "a",
        )
        assert clash.value.existing_id == first["id"]
        with pytest.raises(UniqueViolation) as id_clash:
            await store.insert("services", {**service("z"), "id": first["id"]}, unique_keys=[])
        assert id_clash.value.key_name == "id"

        # keys are per type; None values declare no key
        await store.insert("routes", {"name": "a"}, unique_keys=[("name", "a")])
        for _ in range(2):
            await store.insert("consumers", {"username": None}, unique_keys=[("custom_id", None)])

        # a failed upsert changes nothing
        second = await store.insert("services", service("b"), unique_keys=[("name", "b")])
        revision = await store.revision()
        with pytest.raises(UniqueViolation) as upsert_clash:
            await store.upsert("services", second["id"], service("a"), unique_keys=[("name", "a")])
        assert upsert_clash.value.existing_id == first["id"]
        assert await store.get("services", second["id"]) == second
        assert (await store.get_by_key("services", "name", "b")) == second
        assert await store.revision() == revision

        # composite keys, e.g. a target's (upstream, target)
        target_key = composite_key(first["id"], "10.0.0.1:80")
        await store.insert("targets", {"target": "10.0.0.1:80"}, unique_keys=[("ut", target_key)])
        with pytest.raises(UniqueViolation):
            await store.insert("targets", {"target": "x"}, unique_keys=[("ut", target_key)])
        await store.insert(
            "targets",
            {"target": "10.0.0.1:80"},
            unique_keys=[("ut", composite_key(second["id"], "10.0.0.1:80"))],
        )
        ambiguous = [("a", None), ("a", ""), ("a|", ""), ("a", "|"), ("a", "\\N"), ("a\\", "N")]
        assert len({composite_key(*parts) for parts in ambiguous}) == len(ambiguous)
        cache_key = composite_key("rate-limiting", None, first["id"], None)
        await store.insert("plugins", {"name": "rate-limiting"}, unique_keys=[("ck", cache_key)])
        with pytest.raises(UniqueViolation):
            await store.insert("plugins", {"name": "x"}, unique_keys=[("ck", cache_key)])
        assert (await store.get_by_key("plugins", "ck", cache_key) or {})["name"] == "rate-limiting"

        # a freed name can be taken again
        await store.delete("services", first["id"])
        await store.insert("services", service("a"), unique_keys=[("name", "a")])

    run(store_url, body)


def test_pagination_walks_250_entities(store_url: str) -> None:
    async def body(store: Store) -> None:
        async with store.transaction() as tx:
            inserted = [
                (
                    await tx.insert(
                        "services", service(f"s{i:03}"), unique_keys=[("name", f"s{i:03}")]
                    )
                )["id"]
                for i in range(250)
            ]
        await store.insert("routes", {"name": "other"}, unique_keys=[])
        seen: list[str] = []
        page_sizes: list[int] = []
        offset: str | None = None
        while True:
            page = await store.list("services", size=100, offset=offset)
            page_sizes.append(len(page.data))
            seen += [doc["id"] for doc in page.data]
            if page.next_offset is None:
                break
            offset = page.next_offset
        assert page_sizes == [100, 100, 50]
        assert seen == inserted  # insertion order, nothing twice, nothing missed

        exact = await store.list("services", size=250)
        assert len(exact.data) == 250
        assert exact.next_offset is None
        default = await store.list("services")
        assert len(default.data) == 100
        assert default.next_offset is not None

        # an offset survives a deletion of the entity it points at
        first = await store.list("services", size=10)
        await store.delete("services", first.data[-1]["id"])
        rest = await store.list("services", size=5, offset=first.next_offset)
        assert [d["id"] for d in rest.data] == inserted[10:15]

        with pytest.raises(InvalidOffset):
            await store.list("services", offset=first.next_offset, tags=["x"])
        with pytest.raises(InvalidOffset):
            await store.list("routes", offset=first.next_offset)
        with pytest.raises(InvalidOffset):
            await store.list("services", offset="not-an-offset!")
        for bad_size in (0, 1001):
            with pytest.raises(InvalidQuery):
                await store.list("services", size=bad_size)

    run(store_url, body)


def test_tags_and_or(store_url: str) -> None:
    async def body(store: Store) -> None:
        tagged = {
            "ab": ["a", "b"],
            "a": ["a"],
            "bc": ["b", "c"],
            "none": [],
        }
        for name, tags in tagged.items():
            await store.insert("services", service(name, tags=tags), unique_keys=[])
        await store.insert("routes", {"name": "r", "tags": ["a"]}, unique_keys=[])

        async def names(tags: list[str], mode: str = "and") -> set[str]:
            page = await store.list("services", tags=tags, tags_mode=mode)  # type: ignore[arg-type]
            return {doc["name"] for doc in page.data}

        assert await names(["a"]) == {"ab", "a"}
        assert await names(["a", "b"]) == {"ab"}
        assert await names(["a", "b"], "or") == {"ab", "a", "bc"}
        assert await names(["c", "zzz"], "or") == {"bc"}
        assert await names(["a", "zzz"]) == set()
        assert await names([]) == set(tagged)

        async with store.transaction() as tx:
            paged = await tx.list("services", size=1, tags=["b"], tags_mode="or")
            assert len(paged.data) == 1
            follow = await tx.list(
                "services", size=1, tags=["b"], tags_mode="or", offset=paged.next_offset
            )
            assert {paged.data[0]["name"], follow.data[0]["name"]} == {"ab", "bc"}
            assert follow.next_offset is None

    run(store_url, body)


def test_filters(store_url: str) -> None:
    async def body(store: Store) -> None:
        svc_a = await store.insert("services", service("a"), unique_keys=[])
        svc_b = await store.insert("services", service("b", enabled=False), unique_keys=[])
        for i, owner in enumerate([svc_a, svc_a, svc_b, None]):
            await store.insert(
                "routes",
                {
                    "name": f"r{i}",
                    "service": None if owner is None else {"id": owner["id"]},
                    "regex_priority": i,
                },
                unique_keys=[],
            )

        async def route_names(**filter: str | None) -> list[str]:
            return [d["name"] for d in (await store.list("routes", filter=filter)).data]

        assert await route_names(**{"service.id": svc_a["id"]}) == ["r0", "r1"]
        assert await route_names(**{"service.id": svc_b["id"], "name": "r2"}) == ["r2"]
        assert await route_names(**{"service.id": svc_b["id"], "name": "r0"}) == []
        assert await route_names(service=None) == ["r3"]
        assert await route_names(regex_priority="1") == ["r1"]
        services = await store.list("services", filter={"enabled": "false"})
        assert [d["name"] for d in services.data] == ["b"]
        with pytest.raises(InvalidQuery):
            await store.list("routes", filter={"service.id' OR 1=1 --": "x"})

        deleted = await store.delete_many("routes", filter={"service.id": svc_a["id"]})
        assert len(deleted) == 2
        assert await route_names() == ["r2", "r3"]
        assert await store.delete_many("routes", ids=[*deleted, "missing"]) == []
        with pytest.raises(InvalidQuery):
            await store.delete_many("routes")

    run(store_url, body)


def test_transaction_commits_once_or_not_at_all(store_url: str) -> None:
    async def body(store: Store) -> None:
        before = await store.revision()

        async def failing_transaction() -> None:
            async with store.transaction() as tx:
                await tx.insert("services", service("a"), unique_keys=[("name", "a")])
                await tx.insert("routes", {"name": "r"}, unique_keys=[])
                assert (await tx.get_by_key("services", "name", "a")) is not None
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await failing_transaction()
        assert await store.revision() == before
        assert (await store.list("services")).data == []
        assert (await store.list("routes")).data == []
        assert await store.changes_since(before) == []

        async with store.transaction() as tx:
            svc = await tx.insert("services", service("a"), unique_keys=[("name", "a")])
            route = await tx.insert(
                "routes", {"name": "r", "service": {"id": svc["id"]}}, unique_keys=[]
            )
            temp = await tx.insert("routes", {"name": "temp"}, unique_keys=[])
            assert await tx.delete("routes", temp["id"])
            with pytest.raises(UniqueViolation):  # caught: the transaction stays usable
                await tx.insert("services", service("a"), unique_keys=[("name", "a")])
            assert (await tx.get("routes", route["id"])) == route
        assert await store.revision() == before + 1
        assert sorted(await store.changes_since(before), key=lambda c: c.type) == [
            Change(before + 1, "routes", route["id"], "insert"),
            Change(before + 1, "services", svc["id"], "insert"),
        ]

        async with store.transaction() as tx:  # no writes: no revision
            await tx.get("services", svc["id"])
        assert await store.revision() == before + 1
        with pytest.raises(RuntimeError, match="transaction"):
            async with store.transaction():
                await store.get("services", svc["id"])

    run(store_url, body)


def test_revisions_are_monotonic_and_logged(store_url: str) -> None:
    async def body(store: Store) -> None:
        start = await store.revision()
        revisions = [start]
        svc = await store.insert("services", service("a"), unique_keys=[])
        revisions.append(await store.revision())
        await store.update("services", svc["id"], service("a", port=1), unique_keys=[])
        revisions.append(await store.revision())
        await store.delete("services", svc["id"])
        revisions.append(await store.revision())
        await store.delete("services", svc["id"])  # nothing deleted: no revision
        revisions.append(await store.revision())
        assert revisions == [start, start + 1, start + 2, start + 3, start + 3]
        assert [(c.revision, c.op) for c in await store.changes_since(start)] == [
            (start + 1, "insert"),
            (start + 2, "update"),
            (start + 3, "delete"),
        ]
        assert [c.op for c in await store.changes_since(start + 2)] == ["delete"]
        assert await store.changes_since(start + 3) == []

    run(store_url, body)


def test_replace_all_is_atomic_and_minimal(store_url: str) -> None:
    async def body(store: Store) -> None:
        a = await store.insert("services", service("a"), unique_keys=[("name", "a")])
        b = await store.insert("services", service("b"), unique_keys=[("name", "b")])
        gone = await store.insert("routes", {"name": "gone"}, unique_keys=[])
        before = await store.revision()

        bad = [
            EntityWrite("services", service("x"), [("name", "x")]),
            EntityWrite("services", service("x"), [("name", "x")]),
        ]
        with pytest.raises(UniqueViolation):
            await store.replace_all(bad)
        assert await store.revision() == before
        assert len((await store.list("services")).data) == 2
        assert await store.get("routes", gone["id"]) == gone

        # a and b swap names; a new entity comes; the route goes; one service is unchanged
        c = service("c", id=str(uuid.uuid4()))
        wanted = [
            EntityWrite("services", {**service("b"), "id": a["id"]}, [("name", "b")]),
            EntityWrite("services", {**service("a"), "id": b["id"]}, [("name", "a")]),
            EntityWrite("services", c, [("name", "c")]),
        ]
        revision = await store.replace_all(wanted)
        assert revision == before + 1
        assert await store.get_by_key("services", "name", "b") == {**service("b"), "id": a["id"]}
        assert await store.get("routes", gone["id"]) is None
        assert {(ch.id, ch.op) for ch in await store.changes_since(before)} == {
            (a["id"], "update"),
            (b["id"], "update"),
            (c["id"], "insert"),
            (gone["id"], "delete"),
        }

        assert await store.replace_all(wanted) == revision  # identical: no new revision
        assert await store.replace_all(wanted[:2]) == revision + 1
        assert [(ch.id, ch.op) for ch in await store.changes_since(revision)] == [
            (c["id"], "delete"),
        ]
        assert await store.get_by_key("services", "name", "c") is None

        dump = await store.dump_all()
        assert dump.revision == revision + 1
        assert {(e.type, e.id, e.doc["name"]) for e in dump.entities} == {
            ("services", a["id"], "b"),
            ("services", b["id"], "a"),
        }

    run(store_url, body)


def test_change_feed_sees_other_instances(store_url: str) -> None:
    async def main() -> None:
        writer = await open_store(store_url)
        watcher = await open_store(store_url)
        try:
            feed = watcher.subscribe()
            first = await asyncio.wait_for(anext(feed), 5)
            assert first == await writer.revision()
            await writer.insert("services", service("a"), unique_keys=[])
            seen = await asyncio.wait_for(anext(feed), 1.0)
            assert seen == first + 1
            async with writer.transaction() as tx:
                await tx.insert("services", service("b"), unique_keys=[])
                await tx.insert("services", service("c"), unique_keys=[])
            assert await asyncio.wait_for(anext(feed), 1.0) == first + 2
            assert len(await watcher.changes_since(first + 1)) == 2
            # the writer's own subscribers hear its commits too
            own = writer.subscribe()
            assert await asyncio.wait_for(anext(own), 5) == first + 2
            await writer.delete_many("services", filter={"name": "a"})
            assert await asyncio.wait_for(anext(own), 1.0) == first + 3
            await own.aclose()
        finally:
            await writer.close()
            await watcher.close()
        assert [x async for x in feed] == []  # closing the store ends its subscriptions

    asyncio.run(main())


def test_filter_semantics_are_the_same_on_every_backend(store_url: str) -> None:
    values: list[Any] = ["80", 80, 1.5, True, False, None, "null", {"id": "x"}, [1], "é ü"]
    docs = [{"name": f"d{i}", "v": value} for i, value in enumerate(values)]
    docs.append({"name": "missing"})
    texts: list[str | None] = ["80", "1.5", "true", "false", "null", "x", "é ü", None]
    filters: list[dict[str, str | None]] = [{"v": text} for text in texts]
    filters += [{"v.id": "x"}, {"v.id": None}, {"v": "80", "name": "d0"}]

    async def body(store: Store) -> None:
        for doc in docs:
            await store.insert("things", doc, unique_keys=[])
        for filter in filters:
            conditions = [(filter_path(path), value) for path, value in filter.items()]
            expected = [d["name"] for d in docs if matches_filter(d, conditions)]
            page = await store.list("things", filter=filter)
            assert [d["name"] for d in page.data] == expected, filter
        assert [d["name"] for d in docs if matches_filter(d, [(("v",), "80")])] == ["d0", "d1"]

    run(store_url, body)
