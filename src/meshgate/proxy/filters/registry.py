"""Which plugins this node can run, where their code is, and validating their configs.

Two sources, as Kong:
  * bundled: packages under ``meshgate.plugins`` (``schema.py`` with ``Config``,
    ``handler.py`` with ``Handler``), all enabled by the keyword ``bundled``;
  * third-party: entry points in the group ``meshgate.plugins``.  The entry point's name is
    the plugin name; its value is either the *module path of a package* laid out like a
    bundled plugin (``my_plugin`` → ``my_plugin.schema:Config`` + ``my_plugin.handler:Handler``,
    the recommended form) or a ``PluginHandler`` subclass that carries its config model as the
    class attribute ``Config`` (``my_plugin.handler:Handler``).

The node setting ``plugins`` (Kong's ``plugins`` property, e.g. ``"bundled,my-plugin"``) says
which are enabled; ``off`` enables none.  Configuring a plugin that is not enabled is a config
error with Kong's message.  Plugin code is imported on first use and cached.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from meshgate.errors import ConfigError, Violation
from meshgate.plugins import bundled_plugins
from meshgate.proxy.filters.api import PluginHandler

if TYPE_CHECKING:
    from pydantic import ValidationError

    from meshgate.proxy.filters.config_base import PluginConfig

ENTRY_POINT_GROUP = "meshgate.plugins"


@dataclass(frozen=True, slots=True)
class PluginSpec:
    """One loadable plugin: its handler class and config model."""

    name: str
    handler: type[PluginHandler]
    config: type[PluginConfig]
    source: str  # "bundled" or the entry point's value

    @property
    def priority(self) -> int:
        return self.handler.PRIORITY

    @property
    def version(self) -> str:
        return self.handler.VERSION


def not_enabled(name: str) -> ConfigError:
    message = f"plugin '{name}' not enabled; add it to the 'plugins' configuration property"
    return ConfigError([Violation("name", message)])


def spec_from_handler(name: str, handler: Any, source: str) -> PluginSpec:
    """A spec from a handler class carrying ``Config`` (or with a sibling ``schema`` module)."""
    if not (isinstance(handler, type) and issubclass(handler, PluginHandler)):
        raise TypeError(f"plugin {name!r}: {handler!r} is not a PluginHandler subclass")
    config = getattr(handler, "Config", None)
    if config is None:
        package = handler.__module__.rpartition(".")[0]
        schema = importlib.import_module(f"{package}.schema") if package else None
        config = getattr(schema, "Config", None)
    from meshgate.proxy.filters.config_base import PluginConfig

    if not (isinstance(config, type) and issubclass(config, PluginConfig)):
        raise TypeError(f"plugin {name!r}: no PluginConfig 'Config' next to {handler!r}")
    if not handler.name:
        handler.name = name
    return PluginSpec(name=name, handler=handler, config=config, source=source)


def spec_from_package(name: str, module_path: str, source: str) -> PluginSpec:
    """A spec from a package with ``schema.Config`` and ``handler.Handler``."""
    schema = importlib.import_module(f"{module_path}.schema")
    handler_module = importlib.import_module(f"{module_path}.handler")
    handler = handler_module.Handler
    handler_config = getattr(handler, "Config", None) or schema.Config
    spec = spec_from_handler(name, handler, source)
    if spec.config is not handler_config:
        spec = PluginSpec(name=name, handler=handler, config=handler_config, source=source)
    return spec


def third_party_plugins() -> dict[str, str]:
    """Name -> entry point value of every installed ``meshgate.plugins`` entry point."""
    from importlib.metadata import entry_points  # only when looking (its imports weigh ~2 MB)

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(name: str) -> PluginSpec:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name != name:
            continue
        loaded = ep.load()
        if isinstance(loaded, types.ModuleType):
            return spec_from_package(name, loaded.__name__, ep.value)
        return spec_from_handler(name, loaded, ep.value)
    raise not_enabled(name)


class PluginRegistry:
    """The plugins enabled on this node (from the ``plugins`` setting), loaded lazily."""

    def __init__(self, setting: str | Iterable[str] = "bundled") -> None:
        words = setting.split(",") if isinstance(setting, str) else list(setting)
        names = [w.strip() for w in words if w.strip()]
        self.setting = ",".join(names)
        self._bundled = bundled_plugins()
        enabled: set[str] = set()
        for word in names:
            if word == "off":
                continue
            if word == "bundled":
                enabled.update(self._bundled)
            else:
                enabled.add(word)
        self.enabled: frozenset[str] = frozenset(enabled)
        self._specs: dict[str, PluginSpec] = {}
        self._extra: dict[str, PluginSpec] = {}

    def register(self, spec: PluginSpec) -> None:
        """Enable a plugin given as code (tests, embedding); it wins over every other source."""
        self._extra[spec.name] = spec
        self.enabled = self.enabled | {spec.name}
        self._specs.pop(spec.name, None)

    def get(self, name: str) -> PluginSpec:
        """The spec of an enabled plugin; ``ConfigError`` (Kong's message) otherwise."""
        spec = self._specs.get(name)
        if spec is not None:
            return spec
        if name not in self.enabled:
            raise not_enabled(name)
        spec = self._extra.get(name)
        if spec is None:
            module = self._bundled.get(name)
            if module is not None:
                spec = spec_from_package(name, module, "bundled")
            else:
                spec = _load_entry_point(name)
        self._specs[name] = spec
        return spec

    def names(self) -> list[str]:
        return sorted(self.enabled)

    def compile_config(self, name: str, config: Mapping[str, Any]) -> PluginConfig:
        """``config`` validated into the plugin's model; ``ConfigError`` with ``config.<field>``."""
        from pydantic import ValidationError

        spec = self.get(name)
        try:
            return spec.config.model_validate(dict(config))
        except ValidationError as error:
            raise ConfigError(violations_of(error, prefix="config")) from None

    def validate_config(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with its defaults filled, as plain JSON-able data."""
        return self.compile_config(name, config).model_dump(mode="json")


def violations_of(error: ValidationError, prefix: str) -> list[Violation]:
    """Every problem pydantic found, each at ``prefix.<field path>``."""
    found: list[Violation] = []
    for item in error.errors():
        parts = [prefix, *(str(p) for p in item["loc"])]
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        found.append(Violation(".".join(parts), message))
    return found


_default: PluginRegistry | None = None


def configure_plugins(setting: str | Iterable[str]) -> PluginRegistry:
    """Set this process's ``plugins`` setting (once at start); returns the registry."""
    global _default
    _default = PluginRegistry(setting)
    return _default


def default_registry() -> PluginRegistry:
    """This process's registry (``plugins = bundled`` unless ``configure_plugins`` said else)."""
    global _default
    if _default is None:
        _default = PluginRegistry("bundled")
    return _default


def validate_plugin_config(
    name: str, config: Mapping[str, Any], registry: PluginRegistry | None = None
) -> dict[str, Any]:
    """``config`` of plugin ``name`` with defaults filled; ``ConfigError`` listing every
    violation at ``config.<field>`` (or at ``name`` when the plugin is not enabled)."""
    return (registry or default_registry()).validate_config(name, config)
