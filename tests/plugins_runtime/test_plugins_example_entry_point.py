"""The worked example plugin, loaded the way an installed one is: by its entry point."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.testing_http import live_gateway, plugin

EXAMPLE = Path(__file__).resolve().parents[2] / "examples/plugins/meshgate-plugin-hello"


@pytest.fixture
def hello_installed(tmp_path: Path) -> Iterator[None]:
    """What ``pip install`` of the example leaves behind: the package and its dist-info."""
    dist = tmp_path / "meshgate_plugin_hello-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: meshgate-plugin-hello\nVersion: 0.1.0\n"
    )
    entry_points = (EXAMPLE / "pyproject.toml").read_text()
    assert 'hello = "meshgate_plugin_hello"' in entry_points
    (dist / "entry_points.txt").write_text("[meshgate.plugins]\nhello = meshgate_plugin_hello\n")
    paths = [str(tmp_path), str(EXAMPLE / "src")]
    sys.path[:0] = paths
    try:
        yield
    finally:
        for path in paths:
            sys.path.remove(path)
        for name in [m for m in sys.modules if m.startswith("meshgate_plugin_hello")]:
            del sys.modules[name]


def test_example_plugin_runs_when_enabled(hello_installed: None) -> None:
    config = {"greeting": "Hej", "delay_ms": 5}
    with live_gateway(plugins=[plugin("hello", config)], setting="bundled,hello") as gw:
        res = gw.request("GET", "/r3", headers={"X-Name": "Liv"})
        assert res.json()["headers"]["x-hello"] == "Hej, Liv"
        assert res.header("X-Hello") == "Hej, Liv"


def test_example_plugin_is_refused_when_not_in_the_setting(hello_installed: None) -> None:
    with (
        pytest.raises(ConfigError) as error,
        live_gateway(plugins=[plugin("hello")], setting="bundled"),
    ):
        pass
    assert "plugin 'hello' not enabled" in str(error.value)
