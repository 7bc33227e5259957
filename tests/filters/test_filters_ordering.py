"""Chain order: PRIORITY, then per-instance ``ordering`` in the access phase."""

from __future__ import annotations

import pytest
from filters_kit import compile_chain, recorder, registry, run_access

from meshgate.errors import ConfigError
from meshgate.snapshot import PluginInstance

A, B, C = recorder("a", 30), recorder("b", 20), recorder("c", 10)
REG = registry(A, B, C)


def plugins(**orderings: dict[str, dict[str, tuple[str, ...]]]) -> list[PluginInstance]:
    return [PluginInstance(id=n, name=n, ordering=orderings.get(n)) for n in ("a", "b", "c")]


def order(chain_plugins: list[PluginInstance]) -> list[str]:
    return [name for name, _ in run_access(compile_chain(chain_plugins, REG))]


def test_priority_order_higher_first() -> None:
    assert order(plugins()) == ["a", "b", "c"]


def test_before_moves_a_plugin_up_just_before_the_other() -> None:
    assert order(plugins(c={"before": {"access": ("a",)}})) == ["c", "a", "b"]
    assert order(plugins(c={"before": {"access": ("b",)}})) == ["a", "c", "b"]


def test_after_pulls_the_named_plugin_ahead() -> None:
    assert order(plugins(a={"after": {"access": ("c",)}})) == ["c", "a", "b"]
    assert order(plugins(b={"after": {"access": ("c",)}})) == ["a", "c", "b"]


def test_names_not_on_the_route_are_ignored() -> None:
    assert order(plugins(a={"after": {"access": ("zzz",)}})) == ["a", "b", "c"]


def test_ordering_does_not_change_other_phases() -> None:
    chain = compile_chain(plugins(c={"before": {"access": ("a",)}}), REG)
    assert chain is not None
    assert chain.names == ("c", "a", "b")
    assert [b.name for b in chain.access] == ["c", "a", "b"]


def test_cycle_is_a_config_error() -> None:
    cyclic = plugins(a={"after": {"access": ("b",)}}, b={"after": {"access": ("a",)}})
    with pytest.raises(ConfigError) as error:
        compile_chain(cyclic, REG)
    (violation,) = error.value.violations
    assert violation.path.endswith(".ordering")
    assert "cycle" in violation.message
    assert "a" in violation.message
    assert "b" in violation.message


def test_unknown_ordering_phase_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as error:
        compile_chain(plugins(a={"before": {"log": ("b",)}}), REG)
    assert error.value.to_fields() == {
        "plugins.a.ordering.before.log": "only 'access' can be ordered"
    }
