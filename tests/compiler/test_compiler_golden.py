"""Golden tests: each ``golden/<name>.yaml`` compiles to exactly ``golden/<name>.snapshot.json``.

Run with ``MESHGATE_UPDATE_GOLDEN=1`` to rewrite the expected files after an intended change
(then review the diff).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meshgate.compiler import NodeSettings, compile_gateway
from meshgate.resources import load_file
from meshgate.snapshot import Snapshot

GOLDEN = Path(__file__).parent / "golden"
INPUTS = sorted(GOLDEN.glob("*.yaml"))
UPDATE = os.environ.get("MESHGATE_UPDATE_GOLDEN") == "1"
# Node settings per input; the default node otherwise.
NODES = {
    "certificates": NodeSettings.from_proxy_listen(
        "0.0.0.0:8000, 0.0.0.0:8443 ssl reuseport backlog=512",
        tls_verify_default=True,
        default_certificate="5b1f0c2e-8a3d-4f6b-9e7c-1a2b3c4d5e6f",
    ),
}


def render(snapshot: Snapshot) -> str:
    return json.dumps(snapshot.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def test_there_are_golden_inputs() -> None:
    assert len(INPUTS) >= 6


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.stem)
def test_golden(source: Path) -> None:
    node = NODES.get(source.stem, NodeSettings())
    snapshot = compile_gateway(load_file(source), node)
    actual = render(snapshot)
    expected_file = source.with_suffix(".snapshot.json")
    if UPDATE:
        expected_file.write_text(actual, encoding="utf-8")
    assert expected_file.exists(), (
        f"missing {expected_file.name}: run with MESHGATE_UPDATE_GOLDEN=1"
    )
    assert actual == expected_file.read_text(encoding="utf-8")
    # the expected file is a valid snapshot whose version is its content hash
    stored = Snapshot.from_json(expected_file.read_text(encoding="utf-8"))
    assert stored.version == stored.content_hash()
