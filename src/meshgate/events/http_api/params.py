"""Reading multi-valued request maps (query arguments, headers): the first value or None."""

from __future__ import annotations

from collections.abc import Sequence


def first(values: Sequence[str] | None) -> str | None:
    return values[0] if values else None
