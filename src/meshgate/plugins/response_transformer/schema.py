"""response-transformer config, as Kong's: ``remove``/``rename``/``replace``/``add``/``append``
records of ``headers`` and ``json`` lists (``name:value`` pairs), and ``json_types`` giving
the JSON type of each ``json`` value of replace/add/append (boolean, number or string)."""

from __future__ import annotations

import re
import warnings
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from meshgate.proxy.filters.api import PluginConfig

_HEADER_NAME = re.compile(r"[a-zA-Z0-9\-_]+\Z")
_PAIR = re.compile(r"[^:]+:.*\Z", re.DOTALL)
_SPLIT = re.compile(r"([^:]+):*(.*)\Z", re.DOTALL)


def split_pair(pair: str) -> tuple[str, str | None]:
    """Kong's ``^([^:]+):*(.-)$``; an empty value is None."""
    found = _SPLIT.match(pair)
    if found is None:
        return pair, None
    return found.group(1), found.group(2) or None


def _colon(value: str) -> str:
    if not _PAIR.match(value):
        raise ValueError(f"invalid value: {value}")
    return value


def _colon_headers(value: str) -> str:
    _colon(value)
    name, new = split_pair(value)
    for header in (name, new or ""):
        if not _HEADER_NAME.match(header):
            raise ValueError(f"'{header}' is not a valid header")
    return value


ColonString = Annotated[str, AfterValidator(_colon)]
ColonHeaders = Annotated[str, AfterValidator(_colon_headers)]


def _json_type(value: str) -> str:
    if value not in ("boolean", "number", "string"):
        raise ValueError("expected one of: boolean, number, string")
    return value


JsonType = Annotated[str, AfterValidator(_json_type)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Kong names the field ``json``, which shadows a BaseModel method: the field wins on
# instances, and pydantic's warning about it is expected.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "json"', category=UserWarning)

    class RemoveRecord(_Record):
        json: list[str] = Field(default_factory=list, description="JSON body fields to remove.")  # type: ignore[assignment]
        headers: list[str] = Field(default_factory=list, description="Headers to remove.")

    class RenameRecord(_Record):
        json: list[ColonString] = Field(
            default_factory=list, description="`old:new` JSON field names."
        )  # type: ignore[assignment]
        headers: list[ColonHeaders] = Field(
            default_factory=list, description="`old:new` header names."
        )

    class ValuesRecord(_Record):
        json: list[ColonString] = Field(
            default_factory=list, description="`name:value` JSON fields."
        )  # type: ignore[assignment]
        json_types: list[JsonType] = Field(
            default_factory=list,
            description="The JSON type of each `json` value, by position (default string).",
        )
        headers: list[ColonString] = Field(
            default_factory=list, description="`name:value` headers."
        )


class Config(PluginConfig):
    remove: RemoveRecord = Field(default_factory=RemoveRecord, description="What to remove.")
    rename: RenameRecord = Field(default_factory=RenameRecord, description="What to rename.")
    replace: ValuesRecord = Field(default_factory=ValuesRecord, description="Replace when present.")
    add: ValuesRecord = Field(default_factory=ValuesRecord, description="Add when absent.")
    append: ValuesRecord = Field(
        default_factory=ValuesRecord, description="Add, keeping existing values."
    )
