"""Deltas sent to workers: over random change sequences, patching the running snapshot with
the (framed) delta gives exactly the new snapshot; deltas for another base are refused."""

from __future__ import annotations

import pytest
from live_kit import ChangeMaker, as_entities, base_docs

from meshgate import snapshot
from meshgate.agent.frames import FrameDecoder, encode
from meshgate.agent.snapshot_diff import DeltaMismatch, diff, patch
from meshgate.compiler import NodeSettings
from meshgate.compiler.gateway import GatewayCompiler
from meshgate.errors import ConfigError
from meshgate.resources.entity_set import EntitySet

NODE = NodeSettings.from_proxy_listen("127.0.0.1:8000")


def _through_frames(message: dict[str, object]) -> dict[str, object]:
    (decoded,) = FrameDecoder().feed(encode(message))
    return decoded


@pytest.mark.parametrize("seed", range(5))
def test_a_patched_snapshot_equals_the_full_one(seed: int) -> None:
    maker = ChangeMaker(base_docs(), seed)
    entities = EntitySet()
    compiler = GatewayCompiler()
    running = compiler.compile(entities.replace(as_entities(maker.docs)), NODE)
    # the worker's copy came as a whole snapshot, over JSON
    worker = snapshot.Snapshot.from_json(running.to_json())
    patched_count = 0
    for _ in range(50):
        delta = maker.change()
        try:
            new = compiler.compile(entities.apply(delta), NODE)
        except ConfigError:
            continue
        maker.commit(delta)
        message = _through_frames({"type": "delta", "delta": diff(running, new)})
        worker = patch(worker, message["delta"])  # type: ignore[arg-type]
        assert worker == new
        assert worker.version == new.version == worker.content_hash()
        running = new
        patched_count += 1
    assert patched_count > 10


def test_an_unchanged_item_stays_the_same_object_on_the_worker() -> None:
    maker = ChangeMaker(base_docs(), 2)
    entities = EntitySet()
    compiler = GatewayCompiler()
    old = compiler.compile(entities.replace(as_entities(maker.docs)), NODE)
    key = next(k for k in maker.docs if k[0] == "routes")
    new = compiler.compile(entities.apply({key: {**maker.docs[key], "paths": ["/x"]}}), NODE)
    delta = diff(old, new)
    assert list(delta["sections"]) == ["routes"]
    assert len(delta["sections"]["routes"]["upsert"]) == 1
    patched = patch(old, delta)
    same = sum(a is b for a, b in zip(old.routes, patched.routes, strict=True))
    assert same == len(old.routes) - 1


def test_a_delta_for_another_version_is_refused() -> None:
    entities = EntitySet()
    compiler = GatewayCompiler()
    docs = base_docs()
    old = compiler.compile(entities.replace(as_entities(docs)), NODE)
    key = next(k for k in docs if k[0] == "routes")
    new = compiler.compile(entities.apply({key: {**docs[key], "paths": ["/y"]}}), NODE)
    with pytest.raises(DeltaMismatch):
        patch(new, diff(old, new))


def _one_route_changed() -> tuple[snapshot.Snapshot, snapshot.Snapshot]:
    entities = EntitySet()
    compiler = GatewayCompiler()
    docs = base_docs()
    old = compiler.compile(entities.replace(as_entities(docs)), NODE)
    key = next(k for k in docs if k[0] == "routes")
    new = compiler.compile(entities.apply({key: {**docs[key], "paths": ["/z"]}}), NODE)
    return old, new


def test_a_change_in_place_is_sent_by_position() -> None:
    old, new = _one_route_changed()
    routes = diff(old, new)["sections"]["routes"]
    assert set(routes) == {"upsert", "at", "count"}
    (index,) = routes["at"]
    assert new.routes[index].paths == ("/z",)
    assert patch(old, diff(old, new)) == new


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        ([10_000], "not in the base snapshot"),
        ([-1], "not in the base snapshot"),
        (["0"], "not in the base snapshot"),
        ([0, 1], "2 positions for 1 items"),
    ],
)
def test_a_bad_position_is_refused(at: list[object], reason: str) -> None:
    old, new = _one_route_changed()
    delta = diff(old, new)
    delta["sections"]["routes"]["at"] = at
    with pytest.raises(DeltaMismatch, match=reason):
        patch(old, delta)


def test_an_item_sent_to_another_key_s_position_is_refused() -> None:
    old, new = _one_route_changed()
    delta = diff(old, new)
    (index,) = delta["sections"]["routes"]["at"]
    delta["sections"]["routes"]["at"] = [(index + 1) % len(old.routes)]
    with pytest.raises(DeltaMismatch, match="is not at position"):
        patch(old, delta)
