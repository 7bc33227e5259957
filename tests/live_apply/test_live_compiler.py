"""``GatewayCompiler`` (with memory) against ``compile_gateway`` (a fresh compile): equal
snapshots and versions over random change sequences, and unchanged entities keep their
compiled objects."""

from __future__ import annotations

import pytest
from live_kit import ChangeMaker, as_entities, base_docs

from meshgate import snapshot
from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.compiler.gateway import GatewayCompiler
from meshgate.errors import ConfigError
from meshgate.resources.entity_set import EntitySet

NODE = NodeSettings.from_proxy_listen("127.0.0.1:8000, 127.0.0.1:8443 ssl")


@pytest.mark.parametrize("seed", range(4))
def test_incremental_compile_equals_a_fresh_one(seed: int) -> None:
    maker = ChangeMaker(base_docs(), seed)
    entities = EntitySet()
    compiler = GatewayCompiler()
    compiled = 0
    for _ in range(50):
        delta = maker.change()
        try:
            config = (
                entities.apply(delta)
                if entities.config
                else entities.replace(as_entities(maker.docs))
            )
        except ConfigError:
            continue
        maker.commit(delta)
        try:
            expected = compile_gateway(config, NODE)
        except ConfigError:
            with pytest.raises(ConfigError):
                compiler.compile(config, NODE)
            continue
        snap = compiler.compile(config, NODE)
        assert snap == expected
        assert snap.version == snap.content_hash() == expected.version
        compiled += 1
    assert compiled > 10


def test_unchanged_routes_keep_their_snapshot_objects() -> None:
    maker = ChangeMaker(base_docs(), 3)
    entities = EntitySet()
    compiler = GatewayCompiler()
    first = compiler.compile(entities.replace(as_entities(maker.docs)), NODE)
    service_key = next(key for key in maker.docs if key[0] == "services")
    doc = maker.docs[service_key]
    second = compiler.compile(entities.apply({service_key: {**doc, "retries": 2}}), NODE)
    assert second.version != first.version
    assert all(a is b for a, b in zip(first.routes, second.routes, strict=True))
    assert second.plugins[0] is first.plugins[0]


def test_fallback_certificate_matches_the_default_certificate_rule() -> None:
    entities = EntitySet()
    config = entities.replace(as_entities(base_docs()))
    fallback = snapshot.Certificate(id="00000000-0000-4000-8000-00000000cafe", cert="C", key="K")
    snap = GatewayCompiler().compile(config, NODE, fallback_certificate=fallback)
    assert snap.certificates == (fallback,)
    https = [ln for ln in snap.listeners if ln.protocol == "https"]
    assert https
    assert all(ln.default_certificate == fallback.id for ln in https)
    assert snap.version == snap.content_hash()
