"""The plugin registry: bundled discovery, the ``plugins`` setting, entry points, validation."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshgate.errors import ConfigError
from meshgate.proxy.filters.registry import PluginRegistry, validate_plugin_config

NOT_ENABLED = "plugin '{}' not enabled; add it to the 'plugins' configuration property"


def test_bundled_plugins_are_discovered_and_loadable() -> None:
    reg = PluginRegistry("bundled")
    assert {"request-termination", "correlation-id"} <= set(reg.names())
    spec = reg.get("correlation-id")
    assert spec.priority == 100001
    assert spec.handler.name == "correlation-id"


def test_a_plugin_not_in_the_setting_is_refused_with_kongs_message() -> None:
    reg = PluginRegistry("correlation-id")
    assert reg.names() == ["correlation-id"]
    with pytest.raises(ConfigError) as error:
        reg.get("request-termination")
    assert error.value.to_fields() == {"name": NOT_ENABLED.format("request-termination")}
    with pytest.raises(ConfigError):
        PluginRegistry("off").get("correlation-id")


def test_validation_fills_defaults_and_reports_every_field() -> None:
    assert validate_plugin_config("request-termination", {}) == {
        "status_code": 503,
        "message": None,
        "content_type": None,
        "body": None,
        "echo": False,
        "trigger": None,
    }
    with pytest.raises(ConfigError) as error:
        validate_plugin_config("request-termination", {"status_code": 700, "bogus": 1})
    fields = error.value.to_fields()
    assert set(fields) == {"config.status_code", "config.bogus"}
    with pytest.raises(ConfigError) as error:
        validate_plugin_config("correlation-id", {"generator": "random"})
    assert set(error.value.to_fields()) == {"config.generator"}


@pytest.fixture
def installed_plugins(tmp_path: Path) -> Iterator[Path]:
    """A fake installed distribution exposing two ``meshgate.plugins`` entry points."""
    pkg = tmp_path / "ep_demo_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""demo"""\n')
    (pkg / "schema.py").write_text(
        textwrap.dedent(
            """
            from meshgate.proxy.filters.api import PluginConfig
            class Config(PluginConfig):
                word: str = "hi"
            """
        )
    )
    (pkg / "handler.py").write_text(
        textwrap.dedent(
            """
            from meshgate.proxy.filters.api import PluginHandler
            from .schema import Config
            class Handler(PluginHandler):
                PRIORITY = 42
            class ClassHandler(PluginHandler):
                PRIORITY = 43
                Config = Config
            """
        )
    )
    dist = tmp_path / "ep_demo_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-demo-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[meshgate.plugins]\n"
        "ep-module = ep_demo_plugin\n"
        "ep-class = ep_demo_plugin.handler:ClassHandler\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("ep_demo_plugin")]:
            del sys.modules[name]


def test_entry_point_plugins_load_when_named_in_the_setting(installed_plugins: Path) -> None:
    reg = PluginRegistry("bundled,ep-module,ep-class")
    module_spec = reg.get("ep-module")
    assert module_spec.priority == 42
    assert module_spec.handler.name == "ep-module"
    assert reg.validate_config("ep-module", {}) == {"word": "hi"}
    class_spec = reg.get("ep-class")
    assert class_spec.priority == 43
    with pytest.raises(ConfigError) as error:
        reg.validate_config("ep-class", {"word": 5})
    assert set(error.value.to_fields()) == {"config.word"}
    with pytest.raises(ConfigError):
        PluginRegistry("bundled").get("ep-module")  # installed but not enabled


def test_enabled_name_that_nobody_provides_is_not_enabled(installed_plugins: Path) -> None:
    with pytest.raises(ConfigError) as error:
        PluginRegistry("bundled,ghost").get("ghost")
    assert error.value.to_fields() == {"name": NOT_ENABLED.format("ghost")}
