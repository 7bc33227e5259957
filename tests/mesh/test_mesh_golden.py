"""Golden tests: each ``golden/<case>.yaml`` (a mesh, its dataplanes and policies) compiles,
for every dataplane, to exactly ``golden/<case>.snapshot.json``, and its ``inspect`` rules
view to ``golden/<case>.rules.json``.

The mesh's default resources are added as a new mesh would get them.  TLS material is a
fixed placeholder per dataplane so the files are stable.  Run with
``MESHGATE_UPDATE_GOLDEN=1`` to rewrite the expected files after an intended change (then
review the diff).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from meshgate.compiler.mesh import compile_dataplane
from meshgate.compiler.mesh_rules import dataplane_rules
from meshgate.compiler.mesh_tls import MeshTLSMaterial
from meshgate.policies import default_resources, parse_resources
from meshgate.resources.mesh import Dataplane, Mesh, Policy
from meshgate.snapshot import Snapshot

GOLDEN = Path(__file__).parent / "golden"
INPUTS = sorted(GOLDEN.glob("*.yaml"))
UPDATE = os.environ.get("MESHGATE_UPDATE_GOLDEN") == "1"


def material(mesh: Mesh, dataplane: Dataplane) -> MeshTLSMaterial | None:
    if mesh.mtls is None or not mesh.mtls_enabled:
        return None
    roots = tuple((b.name, f"ROOT CERTIFICATE OF {b.name}") for b in mesh.mtls.backends)
    enabled = mesh.enabled_backend()
    assert enabled is not None
    roots = tuple(sorted(roots, key=lambda r: r[0] != enabled.name))
    return MeshTLSMaterial(
        workload_cert=f"WORKLOAD CERTIFICATE OF {dataplane.name}",
        workload_key=f"WORKLOAD KEY OF {dataplane.name}",
        trusted_roots=roots,
    )


def compile_case(source: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    resources = parse_resources(source.read_text(encoding="utf-8"))
    (mesh,) = [r for r in resources if isinstance(r, Mesh)]
    dataplanes = [r for r in resources if isinstance(r, Dataplane)]
    policies = [r for r in resources if isinstance(r, Policy)] + default_resources(mesh)
    snapshots: dict[str, Any] = {}
    rules: dict[str, Any] = {}
    for dataplane in dataplanes:
        snap = compile_dataplane(mesh, dataplane, dataplanes, policies, material(mesh, dataplane))
        snapshots[dataplane.name] = snap.model_dump(mode="json")
        rules[dataplane.name] = dataplane_rules(mesh, dataplane, dataplanes, policies)
    return snapshots, rules


def render(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def test_there_are_golden_inputs() -> None:
    assert len(INPUTS) >= 4


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.stem)
def test_mesh_golden(source: Path) -> None:
    snapshots, rules = compile_case(source)
    for suffix, data in ((".snapshot.json", snapshots), (".rules.json", rules)):
        expected_file = source.with_suffix(suffix)
        actual = render(data)
        if UPDATE:
            expected_file.write_text(actual, encoding="utf-8")
        assert expected_file.exists(), (
            f"missing {expected_file.name}: run with MESHGATE_UPDATE_GOLDEN=1"
        )
        assert actual == expected_file.read_text(encoding="utf-8"), f"{expected_file.name} differs"
    for dumped in snapshots.values():
        stored = Snapshot.model_validate(dumped)
        assert stored.version == stored.content_hash()


@pytest.mark.parametrize("source", INPUTS, ids=lambda p: p.stem)
def test_mesh_compile_is_deterministic_and_order_independent(source: Path) -> None:
    resources = parse_resources(source.read_text(encoding="utf-8"))
    (mesh,) = [r for r in resources if isinstance(r, Mesh)]
    dataplanes = [r for r in resources if isinstance(r, Dataplane)]
    policies = [r for r in resources if isinstance(r, Policy)] + default_resources(mesh)
    for dataplane in dataplanes:
        tls = material(mesh, dataplane)
        forward = compile_dataplane(mesh, dataplane, dataplanes, policies, tls)
        backward = compile_dataplane(mesh, dataplane, dataplanes[::-1], policies[::-1], tls)
        assert forward == backward
