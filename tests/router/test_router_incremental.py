"""Routers built from the previous one: same answers as a build from scratch, reuse of what
did not change, and the previous router left exactly as it was (it keeps serving)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshgate.proxy import router_build, router_entries, router_index
from meshgate.proxy.router import Router
from meshgate.snapshot import Route

PATHS = ["/", "/a", "/a/", "/a/b", "/ab", "/b", r"~/a/\d+", r"~/ab?/", "~/b$", "~/a|/b"]
HOSTS = ["a.com", "b.com", "*.a.com", "a.*", "a.com:8080", "*a.com"]

route_fields = st.fixed_dictionaries(
    {
        "methods": st.lists(st.sampled_from(["GET", "POST"]), max_size=1, unique=True),
        "hosts": st.lists(st.sampled_from(HOSTS), max_size=2, unique=True),
        "paths": st.lists(st.sampled_from(PATHS), max_size=2, unique=True),
        "headers": st.dictionaries(
            st.just("x-h"),
            st.lists(st.sampled_from(["1", "2"]), min_size=1, max_size=2),
            max_size=1,
        ),
        "regex_priority": st.integers(0, 1),
        "created_at": st.integers(0, 2),
        "protocols": st.sampled_from([("http", "https"), ("http", "https"), ("tcp",)]),
        "priority": st.one_of(st.none(), st.none(), st.integers(0, 1)),
    }
)

REQUESTS = [
    ("POST" if (number + len(host)) % 3 == 0 else "GET", host, path, headers)
    for number, host in enumerate(("a.com", "x.a.com", "a.com:8080", "b.com", "ba.com"))
    for path in ("/", "/a", "/a/1", "/ab/", "/b")
    for headers in (None, {"x-h": "1"})
]

Item = tuple[Route, object]


def make_route(route_id: str, fields: dict[str, Any]) -> Route:
    spec = {
        key: tuple(value) if isinstance(value, list) else value for key, value in fields.items()
    }
    spec["headers"] = {name: tuple(values) for name, values in fields["headers"].items()}
    return Route(id=route_id, **spec)


def fingerprint(router: Router[object]) -> Any:
    """Everything observable: the ranked order (with ignored routes) and every answer."""
    order = [
        (e.route.id, e.path, e.rank, e.priority, e.matched, e.selected, e.reason)
        for e in router.explain("GET", "a.com", "/a", {"x-h": "2"}, None)
    ]
    answers = []
    for method, host, path, headers in REQUESTS:
        found = router.match(method, host, path, headers)
        naive = router._naive_match(method, host, path, headers)
        pair = None if found is None else (found.route.id, found.target, found.matched_path)
        assert pair == (
            None if naive is None else (naive.route.id, naive.target, naive.matched_path)
        )
        answers.append(pair)
    return order, answers, router.uses_headers


operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "change", "remove", "retarget", "copy", "move"]),
        st.integers(0, 1000),
        st.integers(0, 1000),
        route_fields,
    ),
    min_size=1,
    max_size=12,
)


def apply(items: list[Item], op: tuple[str, int, int, dict[str, Any]], serial: int) -> None:
    kind, first, second, fields = op
    if kind == "add" or not items:
        items.insert(first % (len(items) + 1), (make_route(f"n{serial}", fields), object()))
        return
    at = first % len(items)
    route, target = items[at]
    if kind == "change":
        items[at] = (make_route(route.id, fields), object())
    elif kind == "remove":
        del items[at]
    elif kind == "retarget":  # same route, another target (e.g. new plugin chains)
        items[at] = (route, object())
    elif kind == "copy":  # an equal route object, same target
        items[at] = (route.model_copy(), target)
    else:
        items.insert(second % len(items), items.pop(at))


def check_sequence(initial: list[dict[str, Any]], ops: list[Any]) -> None:
    items: list[Item] = [(make_route(f"r{n}", f), object()) for n, f in enumerate(initial)]
    router: Router[object] = Router.build(items)
    for serial, op in enumerate(ops):
        before = fingerprint(router)
        apply(items, op, serial)
        incremental: Router[object] = Router.build(items, previous=router)
        assert fingerprint(router) == before  # the previous router was not touched
        scratch: Router[object] = Router.build(items)
        assert fingerprint(incremental) == fingerprint(scratch)
        router = incremental


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(route_fields, max_size=10), operations)
def test_incremental_build_answers_like_a_fresh_build(
    initial: list[dict[str, Any]], ops: list[Any]
) -> None:
    check_sequence(initial, ops)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(route_fields, min_size=1, max_size=10), operations)
def test_incremental_build_with_header_keyed_groups(
    initial: list[dict[str, Any]], ops: list[Any]
) -> None:
    with mock.patch.object(router_index, "HEADER_KEYING_THRESHOLD", 0):
        check_sequence(initial, ops)


def test_additions_in_one_gap_renumber_when_it_is_full() -> None:
    items: list[Item] = [
        (Route(id="a", paths=("/x",), created_at=0), "a"),
        (Route(id="z", paths=("/x",), created_at=100), "z"),
    ]
    with mock.patch.object(router_build, "_RANK_SPACING", 8):
        router: Router[object] = Router.build(items)  # ranks 0 and 8: three insertions fill the gap
        for n in range(1, 8):  # each newer than the last, older than "z"
            items.append((Route(id=f"m{n}", paths=("/x",), created_at=n), f"m{n}"))
            router = Router.build(items, previous=router)
            ids = [e.route.id for e in router.explain("GET", "h", "/x") if e.matched]
            assert ids == ["a", *(f"m{i}" for i in range(1, n + 1)), "z"]
    ranks = [e.rank for e in router._entries]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)


def many(count: int) -> list[Item]:
    items: list[Item] = []
    for i in range(count):
        hosts = (f"h{i}.test",) if i % 3 == 0 else ((f"*.w{i}.test",) if i % 3 == 1 else ())
        paths = (rf"~/re{i}/\d+$",) if i % 50 == 0 else (f"/r{i}",)
        items.append((Route(id=f"r{i}", hosts=hosts, paths=paths), object()))
    return items


def test_unchanged_entries_and_index_parts_are_reused() -> None:
    items = many(3000)
    old: Router[object] = Router.build(items)
    old_entries = {e.route.id: e for e in old._entries}
    changed = list(items)
    changed[1502] = (changed[1502][0].model_copy(update={"paths": ("/moved",)}), object())
    changed[50] = (changed[50][0], object())  # retargeted regex route
    del changed[2999]
    changed.append((Route(id="new", paths=("/new",)), object()))
    with mock.patch.object(
        router_build, "compile_entries", wraps=router_entries.compile_entries
    ) as compiling:
        new: Router[object] = Router.build(changed, previous=old)
    assert [call.args[0].id for call in compiling.call_args_list] == ["r1502", "new"]
    new_entries = {e.route.id: e for e in new._entries}
    reused = [rid for rid in new_entries if new_entries[rid] is old_entries.get(rid)]
    assert len(reused) == 3000 - 3  # all but r1502, r50 (retargeted) and the new one
    assert "r2999" not in new_entries
    retargeted = new_entries["r50"]
    assert retargeted is not old_entries["r50"]
    assert retargeted.regex is old_entries["r50"].regex  # copied, not compiled again
    assert retargeted.target is changed[50][1]
    assert retargeted.rank == old_entries["r50"].rank
    # the index: host buckets nobody touched are the very same objects
    assert new._index.exact[("h3.test", None)] is old._index.exact[("h3.test", None)]
    assert new._index.suffix[(".w4.test", None)] is old._index.suffix[(".w4.test", None)]
    assert new._index.hostless is not old._index.hostless  # r1502 and "new" live there
    assert old._index.hostless.prefixes["/r1502"].entries[0].route.id == "r1502"
    assert "/r1502" not in new._index.hostless.prefixes
    assert new.match("GET", "x", "/moved").target is changed[1502][1]  # type: ignore[union-attr]
    assert old.match("GET", "x", "/moved") is None


def test_nothing_changed_reuses_everything() -> None:
    items = many(500)
    old: Router[object] = Router.build(items)
    again: Router[object] = Router.build(list(items), previous=old)
    assert again._entries is old._entries
    assert again._index is old._index


@pytest.mark.parametrize("duplicate_at", [0, 250, 499])
def test_duplicate_route_ids_build_from_scratch(duplicate_at: int) -> None:
    items = many(500)
    old: Router[object] = Router.build(items)
    twin = (items[duplicate_at][0].model_copy(update={"paths": ("/twin",)}), object())
    with_twin = [*items[:100], twin, *items[100:]]
    new: Router[object] = Router.build(with_twin, previous=old)
    assert fingerprint(new) == fingerprint(Router.build(with_twin))
