"""``Route.priority``: routes with one rank before all others, higher first."""

from __future__ import annotations

from meshgate.proxy.router import Router
from meshgate.snapshot import Route


def build(*routes: Route) -> Router[str]:
    return Router.build([(r, r.id) for r in routes])


def test_priority_outranks_every_kong_criterion() -> None:
    router = build(
        Route(id="specific", hosts=("a.com",), paths=("/a/b/c",), methods=("GET",)),
        Route(id="ranked", paths=("/",), priority=0),
    )
    found = router.match("GET", "a.com", "/a/b/c")
    assert found is not None
    assert found.target == "ranked"


def test_higher_priority_first_then_kong_order() -> None:
    router = build(
        Route(id="one", paths=("/",), priority=1),
        Route(id="two", paths=("/x",), priority=2),
        Route(id="two-longer", paths=("/x/y",), priority=2),
    )
    assert router.match("GET", "h", "/x/y/z").target == "two-longer"  # type: ignore[union-attr]
    assert router.match("GET", "h", "/x/z").target == "two"  # type: ignore[union-attr]
    assert router.match("GET", "h", "/q").target == "one"  # type: ignore[union-attr]


def test_explain_shows_priority() -> None:
    router = build(Route(id="p", paths=("/",), priority=3), Route(id="k", paths=("/",)))
    explained = router.explain("GET", "h", "/")
    assert [e.route.id for e in explained] == ["p", "k"]
    assert explained[0].priority.startswith("priority 3, weight 1")
    assert explained[1].priority.startswith("weight 1")


def test_unscoped_routes_are_one_router() -> None:
    router, per_listener = Router.build_per_listener([(Route(id="r", paths=("/",)), "r")])
    assert per_listener is None
    assert len(router) == 1
