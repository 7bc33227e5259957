"""Errors shared across packages: configuration violations with their field paths."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One problem in a configuration, located by a dotted field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """A configuration was rejected; ``violations`` lists every problem found."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = violations
        super().__init__("; ".join(str(v) for v in violations) or "invalid configuration")

    @classmethod
    def single(cls, message: str, path: str = "") -> ConfigError:
        """An error with one violation."""
        return cls([Violation(path, message)])

    def to_fields(self) -> dict[str, str]:
        """Flat ``{path: message}`` map, the shape Kong's error body uses for ``fields``."""
        return {v.path: v.message for v in self.violations}
