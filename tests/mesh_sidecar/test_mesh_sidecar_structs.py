"""The sidecar's pydantic-free snapshots (``snapshot_structs``, ``snapshot_codec``): generated
from ``snapshot.py`` and up to date, decoding every golden snapshot to the same values as the
pydantic models, refusing what the models refuse, and keeping pydantic out of the serving
process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest

from meshgate import snapshot, snapshot_structs, snapshot_structs_gen
from meshgate.agent.dataplane import snapshot_codec

TESTS = Path(__file__).resolve().parents[1]


def _golden_snapshots() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(TESTS.glob("*/golden/*.snapshot.json")):
        document = json.loads(path.read_text())
        if "listeners" in document:  # one snapshot (compiler) or one per dataplane (mesh)
            found.append((path.name, document))
        else:
            found.extend((f"{path.name}:{name}", snap) for name, snap in document.items())
    return found


GOLDEN = _golden_snapshots()


def _assert_same(model: Any, struct: Any, path: str) -> None:
    """``struct`` holds what the pydantic ``model`` holds, read the way the proxy reads it."""
    if isinstance(model, pydantic.BaseModel):
        assert type(struct).__name__ == type(model).__name__, path
        assert isinstance(struct, snapshot_structs.Model), path
        assert struct.__struct_fields__ == tuple(type(model).model_fields), path
        for name in type(model).model_fields:
            _assert_same(getattr(model, name), getattr(struct, name), f"{path}.{name}")
    elif isinstance(model, tuple):
        assert isinstance(struct, tuple), path
        assert len(struct) == len(model), path
        for index, (a, b) in enumerate(zip(model, struct, strict=True)):
            _assert_same(a, b, f"{path}[{index}]")
    elif isinstance(model, dict):
        assert isinstance(struct, dict), path
        assert list(struct) == list(model), path
        for key in model:
            _assert_same(model[key], struct[key], f"{path}[{key!r}]")
    else:
        assert type(struct) is type(model), (path, model, struct)
        assert struct == model, (path, model, struct)


def test_the_generated_structs_are_up_to_date() -> None:
    assert snapshot_structs_gen.render_module() == snapshot_structs_gen.TARGET.read_text(), (
        "snapshot.py changed: run python -m meshgate.snapshot_structs_gen"
    )


def test_golden_snapshots_exist() -> None:
    assert len(GOLDEN) >= 10  # compiler and mesh goldens: the next test has data to compare


@pytest.mark.parametrize(("name", "document"), GOLDEN, ids=[name for name, _ in GOLDEN])
def test_golden_snapshots_decode_to_the_values_of_the_models(
    name: str, document: dict[str, Any]
) -> None:
    model = snapshot.Snapshot.model_validate(document).with_version()
    pushed = model.model_dump(mode="json")  # what the control plane sends
    decoded = snapshot_codec.from_builtins(pushed)
    _assert_same(model, decoded, "$")
    cached = snapshot_codec.to_json(decoded)
    assert snapshot_codec.from_json(cached) == decoded
    assert snapshot.Snapshot.model_validate_json(cached) == model  # the cache reads either way
    for listener in decoded.listeners:
        hash(listener)  # the runtime keys its servers by listener


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"listeners": [{"name": "in", "port": 70000}]}, "$.listeners[0].port"),
        ({"listeners": [{"name": "in", "port": 80, "colour": "red"}]}, "$.listeners[0]"),
        ({"routes": [{"id": "r", "protocols": ["ftp"]}]}, "$.routes[0].protocols[0]"),
        (
            {"clusters": [{"name": "c", "endpoints": [{"host": "h", "port": 0}]}]},
            "$.clusters[0].endpoints[0].port",
        ),
        ({"services": [{"id": "s", "host": "h", "retries": "five"}]}, "$.services[0].retries"),
        ({"routes": [{"protocols": ["http"]}]}, "$.routes[0]"),  # no id
        ({"version": 3}, "$.version"),
    ],
)
def test_what_the_models_refuse_is_refused_with_its_path(change: dict[str, Any], path: str) -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        snapshot.Snapshot.model_validate(change)
    where = [
        "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        for error in refused.value.errors()
    ]
    assert any(w.startswith(path) for w in where)  # msgspec names the object of a missing field
    with pytest.raises(ValueError, match=re.escape(f"at `{path}`")):
        snapshot_codec.from_builtins(change)
    with pytest.raises(ValueError, match=re.escape(f"at `{path}`")):
        snapshot_codec.from_json(json.dumps(change).encode())


def test_a_cached_file_that_is_not_a_snapshot_is_refused() -> None:
    for data in (b"", b"[]", b'{"listeners": 1}', b"\xff"):
        with pytest.raises(msgspec.DecodeError):  # a ValueError: what load_snapshot catches
            snapshot_codec.from_json(data)


def test_replace_copies_with_changes() -> None:
    cert = snapshot_structs.Certificate(id="c", cert="C", key="K")
    changed = snapshot_codec.replace(cert, key="K2")
    assert (changed.key, cert.key, changed.cert) == ("K2", "K", "C")
    with pytest.raises(TypeError):
        snapshot_codec.replace(cert, colour="red")


def test_the_serving_process_runs_a_snapshot_without_pydantic(tmp_path: Path) -> None:
    """Import the serving process's modules, decode a mesh snapshot and compile it."""
    _, document = next(item for item in GOLDEN if item[0].startswith("basic_mtls"))
    snap_file = tmp_path / "snap.json"
    snap_file.write_text(json.dumps({**document, "certificates": []}))  # theirs are placeholders
    code = (
        "import sys\n"
        "from meshgate.agent.dataplane.start import without_pydantic_plugins\n"
        "without_pydantic_plugins()\n"
        "import meshgate.agent.dataplane.serve\n"
        "from pathlib import Path\n"
        "from meshgate.agent.dataplane import snapshot_codec\n"
        "from meshgate.proxy.runtime import build_config\n"
        "from meshgate.proxy.tls.upstream import UpstreamTLS\n"
        f"snap = snapshot_codec.from_json(Path({str(snap_file)!r}).read_bytes())\n"
        "config, _ = build_config(snap, None, UpstreamTLS())\n"
        "print(len(config.services), 'pydantic' in sys.modules, 'pydantic_core' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    services, *loaded = done.stdout.split()
    assert int(services) == len(document["services"]) > 0
    assert loaded == ["False", "False"]


def test_struct_decoding_errors_are_msgspec_validation_errors() -> None:
    with pytest.raises(msgspec.ValidationError):
        snapshot_codec.from_builtins({"listeners": "no"})
