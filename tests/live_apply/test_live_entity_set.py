"""``EntitySet`` (incremental validation) against ``config_from_entities`` (the reference):
over random change sequences the configs are equal, refused changes carry the same
violations and leave the set untouched, and unchanged entities keep their model objects."""

from __future__ import annotations

import pytest
from live_kit import ChangeMaker, Docs, as_entities, base_docs

from meshgate.errors import ConfigError
from meshgate.resources.entity_set import EntitySet
from meshgate.resources.from_entities import config_from_entities
from meshgate.resources.gateway_config import GatewayConfig


def _violations(error: ConfigError) -> set[tuple[str, str]]:
    return {(v.path, v.message) for v in error.violations}


def _reference(docs: Docs) -> GatewayConfig | ConfigError:
    try:
        return config_from_entities(as_entities(docs))
    except ConfigError as error:
        return error


@pytest.mark.parametrize("seed", range(6))
def test_random_changes_match_the_full_validation(seed: int) -> None:
    maker = ChangeMaker(base_docs(), seed)
    entities = EntitySet()
    entities.replace(as_entities(maker.docs))
    refused = 0
    for _ in range(60):
        delta = maker.change()
        if not delta:
            continue
        before = entities.config
        expected = _reference(maker.preview(delta))
        if isinstance(expected, ConfigError):
            with pytest.raises(ConfigError) as caught:
                entities.apply(delta)
            assert _violations(caught.value) == _violations(expected)
            assert entities.config is before
            refused += 1
            continue
        assert entities.apply(delta) == expected
        maker.commit(delta)
    assert refused > 0, "the sequence should include refused changes"
    assert entities.fast_applies > 10, "most valid changes should take the fast path"
    assert entities.config == config_from_entities(as_entities(maker.docs))


def test_an_unrelated_change_keeps_every_other_model_object() -> None:
    maker = ChangeMaker(base_docs(), 1)
    entities = EntitySet()
    first = entities.replace(as_entities(maker.docs))
    target = first.routes[3]
    doc = maker.docs[("routes", str(target.id))]
    second = entities.apply({("routes", str(target.id)): {**doc, "paths": ["/moved"]}})
    assert second.routes[3].paths == ("/moved",)
    for index, route in enumerate(first.routes):
        if index != 3:
            assert second.routes[index] is route
    assert second.services is first.services
    assert second.plugins is first.plugins


def test_a_full_reload_keeps_objects_of_unchanged_documents() -> None:
    docs = base_docs()
    entities = EntitySet()
    first = entities.replace(as_entities(docs))
    again = entities.replace([(kind, dict(doc)) for kind, doc in as_entities(docs)])
    assert all(a is b for a, b in zip(first.routes, again.routes, strict=True))


def test_a_refused_change_names_the_entity_and_field() -> None:
    docs = base_docs()
    entities = EntitySet()
    config = entities.replace(as_entities(docs))
    route = config.routes[0]
    key = ("routes", str(route.id))
    with pytest.raises(ConfigError) as caught:
        entities.apply({key: {**docs[key], "paths": ["no-slash"]}})
    assert any(v.path.startswith(f"routes[{route.id}].paths") for v in caught.value.violations)
    assert entities.config is config


def test_a_nested_document_is_validated_as_the_declarative_walk_does() -> None:
    docs = base_docs()
    key = next(k for k in docs if k[0] == "services")
    docs[key] = {**docs[key], "routes": [{"name": "nested", "paths": ["/nested"]}]}
    assert EntitySet().replace(as_entities(docs)) == config_from_entities(as_entities(docs))
