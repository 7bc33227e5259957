"""Shared pieces of the mesh resource models: the base class, names, durations, label checks.

Mesh resources follow Kuma's Universal YAML: camelCase field names (``enabledBackend``,
``targetRef``), durations written as Go durations (``250ms``, ``1m30s``; ``d`` and ``y`` are
accepted too, as Kuma accepts them for CA lifetimes).  Models keep durations as the text the
user wrote, so ``inspect`` shows what was applied; ``duration_ms`` converts when compiling.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

SERVICE_TAG = "kuma.io/service"
PROTOCOL_TAG = "kuma.io/protocol"


class MeshModel(BaseModel):
    """Base of every mesh model: immutable, camelCase in files, unknown fields rejected."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|y)")
_UNIT_MS = {
    "ns": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "h": 3_600_000.0,
    "d": 86_400_000.0,
    "y": 365 * 86_400_000.0,
}


@functools.lru_cache(maxsize=4096)
def duration_ms(text: str) -> int:
    """A Go-style duration (``"1m30s"``, ``"250ms"``, ``"24h"``, ``"0"``) in whole milliseconds.

    Raises ``ValueError`` for anything else; sub-millisecond remainders round up, so a
    positive duration never becomes 0.
    """
    if text == "0":
        return 0
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"invalid duration '{text}': expected e.g. 500ms, 5s, 1m30s, 24h")
    whole = int(total)
    return whole + 1 if total > whole else whole


def _check_duration(text: str) -> str:
    duration_ms(text)
    return text


Duration = Annotated[str, AfterValidator(_check_duration)]
"""A duration kept as written (``"5s"``); validated on load."""

_NAME = re.compile(r"^[a-z0-9]([a-z0-9.\-_]{0,251}[a-z0-9])?$")


def check_name(value: str) -> str:
    """Kuma resource names: lower-case alphanumerics, ``-``, ``_``, ``.``; 1..253 characters."""
    if not _NAME.match(value):
        raise ValueError(
            f"invalid name '{value}': expected lower-case alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return value


Name = Annotated[str, AfterValidator(check_name)]


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key, value in tags.items():
        if not key:
            raise ValueError("tag names must not be empty")
        if not value:
            raise ValueError(f"tag '{key}' must have a value")
    return tags


Tags = Annotated[dict[str, str], AfterValidator(_check_tags)]
