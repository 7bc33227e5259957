"""10,000 routes: they build quickly, route correctly, and a lookup only inspects candidates."""

from __future__ import annotations

import random
import time

import pytest

from meshgate.proxy.router import Router
from meshgate.proxy.router_entries import Entry
from meshgate.snapshot import Route

ROUTE_COUNT = 10_000


def many_routes(count: int) -> list[Route]:
    routes: list[Route] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            routes.append(Route(id=f"r{i}", paths=(f"/svc{i}",)))
        elif kind == 1:
            routes.append(Route(id=f"r{i}", hosts=(f"h{i}.example.com",), paths=(f"/api/v{i}",)))
        elif kind == 2:
            routes.append(Route(id=f"r{i}", methods=("GET", "POST"), paths=(f"/m{i}/items",)))
        elif kind == 3:
            routes.append(Route(id=f"r{i}", hosts=(f"*.w{i}.example.com",), paths=("/",)))
        elif i % 500 == 4:  # a few regex routes, as in real configs
            routes.append(Route(id=f"r{i}", paths=(rf"~/re{i}/\d+$",), regex_priority=i % 3))
        else:
            routes.append(Route(id=f"r{i}", headers={"x-tenant": (f"t{i}",)}, paths=("/t",)))
    return routes


@pytest.fixture(scope="module")
def big_router() -> Router[str]:
    routes = many_routes(ROUTE_COUNT)
    started = time.perf_counter()
    router = Router.build([(r, r.id) for r in routes])
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, f"building {ROUTE_COUNT} routes took {elapsed:.1f}s"
    return router


def requests_for(count: int) -> list[tuple[str, str, str, dict[str, str]]]:
    rng = random.Random(7)
    requests: list[tuple[str, str, str, dict[str, str]]] = []
    for _ in range(count):
        kind = rng.randrange(7)
        # mostly an index of a route of that kind; sometimes one past the end (a miss)
        i = rng.randrange(ROUTE_COUNT // 5 + 10) * 5 + min(kind, 4)
        if kind == 4:
            i = rng.randrange(ROUTE_COUNT // 500 + 2) * 500 + 4
        if kind == 0:
            requests.append(("GET", "x", f"/svc{i}/a", {}))
        elif kind == 1:
            requests.append(("GET", f"h{i}.example.com:8080", f"/api/v{i}/z", {}))
        elif kind == 2:
            requests.append((rng.choice(["GET", "PUT"]), "x", f"/m{i}/items", {}))
        elif kind == 3:
            requests.append(("GET", f"a.b.w{i}.example.com", "/p", {}))
        elif kind == 4:
            requests.append(("GET", "x", f"/re{i}/12", {}))
        elif kind == 5:
            requests.append(("GET", "x", "/t/1", {"x-tenant": f"T{i}"}))
        else:
            requests.append(("GET", "x", f"/nothing/{i}", {}))
    return requests


def test_big_router_agrees_with_a_full_scan(big_router: Router[str]) -> None:
    hits = 0
    for method, host, path, headers in requests_for(150):
        found = big_router.match(method, host, path, headers)
        naive = big_router._naive_match(method, host, path, headers)
        assert (found and (found.target, found.matched_path)) == (
            naive and (naive.target, naive.matched_path)
        ), (method, host, path, headers)
        hits += found is not None
    assert hits > 50  # the sample exercises real matches, not only misses


def test_specific_lookups(big_router: Router[str]) -> None:
    def target(*args: object) -> str | None:
        found = big_router.match(*args)  # type: ignore[arg-type]
        return None if found is None else found.target

    assert target("GET", "x", "/svc10/a") == "r10"
    assert target("GET", "H11.example.com", "/api/v11") == "r11"
    assert target("GET", "x", "/m12/items") == "r12"
    assert target("DELETE", "x", "/m12/items") is None
    assert target("GET", "q.w13.example.com", "/") == "r13"
    assert target("GET", "x", "/re504/9") == "r504"
    assert target("GET", "x", "/t", {"x-tenant": "t9"}) == "r9"


def test_lookup_inspects_only_candidates(
    big_router: Router[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inspected: list[str] = []
    original = Entry.rest_matches

    def counting(self: Entry[str], *args: object) -> bool:
        inspected.append(self.route.id)
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Entry, "rest_matches", counting)
    for method, host, path, headers in [
        ("GET", "x", "/svc10/a", None),
        ("GET", "h11.example.com", "/api/v11", None),
        ("GET", "q.w13.example.com", "/", None),
        ("GET", "x", "/nothing/here", None),
        ("GET", "x", "/t", {"x-tenant": "t9"}),  # ~2000 routes share path /t
        ("GET", "x", "/t", {"x-tenant": "t9, t14"}),
        ("GET", "x", "/t", {"x-tenant": "nobody"}),
    ]:
        inspected.clear()
        big_router.match(method, host, path, headers)
        assert len(inspected) <= 3, (path, inspected)
