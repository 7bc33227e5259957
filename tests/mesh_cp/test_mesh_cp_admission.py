"""Admission at scale, in process: a burst of admissions ends with every sidecar holding what a
from-scratch compile gives, and only the sidecars a change can reach are recompiled."""

from __future__ import annotations

import asyncio
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from mesh_cp_fakes import Rig, endpoints_of, engine_rig, numbered_doc
from mesh_cp_kit import eventually

from meshgate import snapshot
from meshgate.controlplane.distribution import compiling
from meshgate.controlplane.distribution.storage import put_resource
from meshgate.policies import parse_resource
from meshgate.resources.mesh.dataplane import Dataplane
from meshgate.resources.mesh.mesh import Mesh
from meshgate.tasks import spawn

SERVICES = 10
TIMEOUT = {
    "type": "MeshTimeout",
    "name": "everyone",
    "mesh": "default",
    "spec": {
        "targetRef": {"kind": "Mesh"},
        "to": [{"targetRef": {"kind": "Mesh"}, "default": {"http": {"requestTimeout": "9s"}}}],
    },
}


def _outbound_of(index: int) -> int | None:
    """Three in four call the next service; the others only serve."""
    return None if index % 4 == 0 else (index + 1) % SERVICES


async def _assert_matches_from_scratch(rig: Rig) -> dict[str, snapshot.Snapshot]:
    expected = await rig.from_scratch()
    assert set(expected) == {key[1] for key in rig.engine.sessions}
    for name, snap in expected.items():
        sidecar = rig.sidecars[name]
        session = rig.engine.sessions[("default", name)]
        assert session.pushed is not None
        assert session.pushed.version == snap.version, name
        assert sidecar.versions[-1] == snap.version, name
        # only new versions are sent
        assert all(a != b for a, b in pairwise(sidecar.versions)), name
        sent = len(sidecar.versions) + sum(len(s.versions) for n, s in rig.replaced if n == name)
        assert rig.engine.statuses[("default", name)].pushes == sent
    return expected


def test_a_burst_of_admissions_ends_where_a_from_scratch_compile_does(tmp_path: Path) -> None:
    count = 200

    async def scenario() -> None:
        async with engine_rig(tmp_path) as rig:
            docs = [numbered_doc(i, SERVICES, outbound_to=_outbound_of(i)) for i in range(count)]
            await asyncio.gather(*(rig.admit(doc) for doc in docs))
            assert all(s.kinds[:2] == ["welcome", "snapshot"] for s in rig.sidecars.values())
            await rig.engine.reload()
            expected = await _assert_matches_from_scratch(rig)
            # dp-009 calls svc-0, which dp-000, dp-010 … dp-190 serve
            served = {(f"10.0.0.{i}", 8080) for i in range(0, count, SERVICES)}
            assert endpoints_of(expected["dp-009"], "svc-0") == served
            assert ("10.0.0.150", 8080) in served

            # a policy for the whole mesh reaches every sidecar with an outbound
            async with rig.store.transaction() as tx:
                resource = parse_resource(TIMEOUT)
                assert not isinstance(resource, (Mesh, Dataplane))
                await put_resource(tx, resource)
            before = {name: s.versions[-1] for name, s in rig.sidecars.items()}
            await rig.engine.reload()
            await _assert_matches_from_scratch(rig)
            changed = {name for name, s in rig.sidecars.items() if s.versions[-1] != before[name]}
            assert changed == {f"dp-{i:03d}" for i in range(count) if _outbound_of(i) is not None}

            # a dataplane that moves, and one that leaves with a bye
            await rig.admit(numbered_doc(151, SERVICES, address="10.9.9.9"))
            leaving = rig.sidecars["dp-150"].session
            assert leaving is not None
            await rig.engine.disconnected(leaving, graceful=True)
            await rig.engine.reload()
            expected = await _assert_matches_from_scratch(rig)
            assert ("10.0.0.150", 8080) not in endpoints_of(expected["dp-009"], "svc-0")
            assert ("10.9.9.9", 8080) in endpoints_of(expected["dp-010"], "svc-1")
            assert ("10.0.0.151", 8080) not in endpoints_of(expected["dp-010"], "svc-1")

    asyncio.run(scenario())


def test_only_the_sidecars_a_new_dataplane_reaches_are_recompiled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with engine_rig(tmp_path, push_delay=0.001) as rig:
            compiled: Counter[str] = Counter()
            original = compiling.compile_for

            async def counting(
                engine: Any, mesh: Any, dataplane: Any, session: Any
            ) -> snapshot.Snapshot:
                compiled[dataplane.name] += 1
                return await original(engine, mesh, dataplane, session)

            monkeypatch.setattr(compiling, "compile_for", counting)
            for i in range(60):  # serving only: nobody depends on anybody
                await rig.admit(numbered_doc(i, SERVICES))
            assert compiled == Counter({f"dp-{i:03d}": 1 for i in range(60)})

            compiled.clear()
            await rig.admit(numbered_doc(100, SERVICES, outbound_to=3))  # calls svc-3
            assert compiled == Counter({"dp-100": 1})
            compiled.clear()
            await rig.admit(numbered_doc(103, SERVICES))  # serves svc-3: dp-100 gets it
            await rig.engine.reload()
            assert compiled == Counter({"dp-103": 1, "dp-100": 1})
            dp100 = rig.engine.sessions[("default", "dp-100")].pushed
            assert dp100 is not None
            assert ("10.0.0.103", 8080) in endpoints_of(dp100, "svc-3")
            assert len(rig.sidecars["dp-100"].versions) == 2

            # the same dataplane admitted again (a reconnect): only itself is compiled, and
            # its unchanged snapshot is sent again to the new connection
            compiled.clear()
            first = rig.sidecars["dp-103"]
            again = await rig.admit(numbered_doc(103, SERVICES))
            await rig.engine.reload()
            assert compiled == Counter({"dp-103": 1})
            assert first.closed
            assert again.versions == first.versions
            await _assert_matches_from_scratch(rig)

    asyncio.run(scenario())


def test_an_admission_cancelled_while_waiting_for_its_pass_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with engine_rig(tmp_path, push_delay=2.0) as rig:
            tasks = [
                spawn(rig.admit(numbered_doc(i, SERVICES)), name=f"admit-{i}") for i in range(5)
            ]
            await eventually(lambda: len(rig.engine.sessions) == 5)
            tasks[0].cancel()
            done = await asyncio.gather(*tasks[1:])
            assert all(sidecar.versions for sidecar in done)
            assert tasks[0].cancelled()
            assert ("default", "dp-000") not in rig.engine.sessions
            assert rig.engine.statuses[("default", "dp-000")].connected is False

    asyncio.run(scenario())
