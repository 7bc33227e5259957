"""Pagination (``size``/``offset``/``next``), tags filters and the ``/tags`` index."""

from __future__ import annotations

from admin_kit import AdminClient


def _make_consumers(admin: AdminClient, count: int) -> list[str]:
    ids = []
    for index in range(count):
        tags = ["even" if index % 2 == 0 else "odd", "all"]
        if index % 3 == 0:
            tags.append("third")
        ids.append(
            admin.ok("POST", "/consumers", 201, json={"username": f"u{index}", "tags": tags})["id"]
        )
    return ids


def test_pagination_walk_by_offset_and_next(admin: AdminClient) -> None:
    ids = _make_consumers(admin, 7)
    seen: list[str] = []
    page = admin.ok("GET", "/consumers?size=3")
    pages = 1
    while True:
        seen += [doc["id"] for doc in page["data"]]
        if page["next"] is None:
            assert "offset" not in page
            break
        assert page["next"] == f"/consumers?offset={page['offset']}&size=3"
        page = admin.ok("GET", page["next"])
        pages += 1
    assert seen == ids  # insertion order, nothing lost or repeated
    assert pages == 3
    by_offset = admin.ok("GET", "/consumers", params={"size": "3"})
    second = admin.ok("GET", "/consumers", params={"size": "3", "offset": by_offset["offset"]})
    assert [doc["id"] for doc in second["data"]] == ids[3:6]


def test_default_page_size_is_100(admin: AdminClient) -> None:
    admin.ok("PUT", "/services/one", json={"host": "one.internal"})
    page = admin.ok("GET", "/services")
    assert page["next"] is None
    assert len(page["data"]) == 1


def test_tags_and_or_filters(admin: AdminClient) -> None:
    ids = _make_consumers(admin, 6)
    both = admin.ok("GET", "/consumers?tags=even,third")
    assert [doc["id"] for doc in both["data"]] == [ids[0]]
    either = admin.ok("GET", "/consumers?tags=odd/third")
    assert {doc["id"] for doc in either["data"]} == {ids[0], ids[1], ids[3], ids[5]}
    paged = admin.ok("GET", "/consumers?tags=all&size=4")
    assert paged["next"] == f"/consumers?offset={paged['offset']}&size=4&tags=all"
    rest = admin.ok("GET", paged["next"])
    assert len(paged["data"]) + len(rest["data"]) == 6
    other_query = admin.get(f"/consumers?tags=odd&offset={paged['offset']}")
    assert other_query.status_code == 400  # an offset belongs to its query


def test_tags_ignored_on_scoped_lists(admin: AdminClient) -> None:
    admin.ok("POST", "/services", 201, json={"name": "svc", "host": "svc.internal"})
    admin.ok("POST", "/services/svc/routes", 201, json={"paths": ["/a"], "tags": ["x"]})
    admin.ok("POST", "/services/svc/routes", 201, json={"paths": ["/b"]})
    assert len(admin.ok("GET", "/services/svc/routes?tags=x")["data"]) == 2
    assert len(admin.ok("GET", "/routes?tags=x")["data"]) == 1


def test_tags_index(admin: AdminClient) -> None:
    consumer = admin.ok("POST", "/consumers", 201, json={"username": "a", "tags": ["blue", "red"]})
    service = admin.ok("POST", "/services", 201, json={"host": "s.internal", "tags": ["blue"]})
    everything = admin.ok("GET", "/tags")
    assert {(row["tag"], row["entity_name"], row["entity_id"]) for row in everything["data"]} == {
        ("blue", "consumers", consumer["id"]),
        ("red", "consumers", consumer["id"]),
        ("blue", "services", service["id"]),
    }
    blue = admin.ok("GET", "/tags/blue?size=1")
    assert len(blue["data"]) == 1
    assert blue["next"] is not None
    rest = admin.ok("GET", blue["next"])
    assert {row["entity_id"] for row in blue["data"] + rest["data"]} == {
        consumer["id"],
        service["id"],
    }
    assert admin.get("/tags/a,b").status_code == 400
