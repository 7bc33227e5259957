"""request-transformer config, as Kong's: ``http_method`` and the ``remove``/``rename``/
``replace``/``add``/``append`` records of ``body``/``headers``/``querystring`` lists
(``replace`` also has ``uri``).  Pairs are ``name:value``; values may be templates."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from meshgate.proxy.filters.api import PluginConfig

from .template import TemplateError, compile_template

_HEADER_NAME = re.compile(r"[a-zA-Z0-9\-_]+\Z")
_PAIR = re.compile(r"([^:]+):*(.*)\Z", re.DOTALL)
_METHOD = re.compile(r"[A-Z]+\Z")


def split_pair(pair: str) -> tuple[str, str]:
    """Kong's ``^([^:]+):*(.-)$``: the name, then the value after the colon(s)."""
    found = _PAIR.match(pair)
    if found is None:
        return pair, ""
    return found.group(1), found.group(2)


def _header_name(name: str) -> None:
    if not _HEADER_NAME.match(name):
        raise ValueError(f"'{name}' is not a valid header")


def _check_header(value: str) -> str:
    _header_name(split_pair(value)[0])
    return value


def _check_pair_syntax(value: str) -> str:
    if _PAIR.match(value) is None or ":" not in value:
        raise ValueError(f"invalid value: {value}")
    return value


def _check_template(value: str) -> None:
    try:
        compile_template(value)
    except TemplateError as exc:
        raise ValueError(f"value '{value}' is not in supported format, error:{exc}") from None


def _check_for_value(entry: str) -> str:
    name, value = split_pair(entry)
    if not value:
        raise ValueError(f"key '{name}' has no value")
    _check_template(value)
    return entry


def _check_header_value(entry: str) -> str:
    _check_pair_syntax(entry)
    _check_header(entry)
    _check_template(split_pair(entry)[1])
    return entry


def _check_colon_headers(entry: str) -> str:
    _check_pair_syntax(entry)
    name, value = split_pair(entry)
    _header_name(name)
    _header_name(value)
    return entry


HeaderName = Annotated[str, AfterValidator(_check_header)]
ColonString = Annotated[str, AfterValidator(_check_for_value)]
ColonHeaderValue = Annotated[str, AfterValidator(_check_header_value)]
ColonHeaders = Annotated[str, AfterValidator(_check_colon_headers)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoveRecord(_Record):
    body: list[str] = Field(default_factory=list, description="Body parameters to remove.")
    headers: list[HeaderName] = Field(default_factory=list, description="Headers to remove.")
    querystring: list[str] = Field(default_factory=list, description="Query arguments to remove.")


class RenameRecord(_Record):
    body: list[ColonString] = Field(
        default_factory=list, description="`old:new` body parameter names."
    )
    headers: list[ColonHeaders] = Field(default_factory=list, description="`old:new` header names.")
    querystring: list[ColonString] = Field(
        default_factory=list, description="`old:new` query argument names."
    )


class ValuesRecord(_Record):
    body: list[ColonString] = Field(
        default_factory=list, description="`name:value` body parameters."
    )
    headers: list[ColonHeaderValue] = Field(
        default_factory=list, description="`name:value` headers."
    )
    querystring: list[ColonString] = Field(
        default_factory=list, description="`name:value` query arguments."
    )


def _check_uri(value: str | None) -> str | None:
    if value is not None:
        _check_template(value)
    return value


class ReplaceRecord(ValuesRecord):
    uri: Annotated[str | None, AfterValidator(_check_uri)] = Field(
        default=None,
        description="The upstream path (may use templates, e.g. `$(uri_captures.id)`).",
    )


def _check_method(value: str | None) -> str | None:
    if value is not None and not _METHOD.match(value):
        raise ValueError(f"invalid value: {value}")
    return value


class Config(PluginConfig):
    http_method: Annotated[str | None, AfterValidator(_check_method)] = Field(
        default=None, description="The method sent upstream (uppercase letters only)."
    )
    remove: RemoveRecord = Field(default_factory=RemoveRecord, description="What to remove.")
    rename: RenameRecord = Field(default_factory=RenameRecord, description="What to rename.")
    replace: ReplaceRecord = Field(
        default_factory=ReplaceRecord, description="What to replace when present (and the URI)."
    )
    add: ValuesRecord = Field(default_factory=ValuesRecord, description="What to add when absent.")
    append: ValuesRecord = Field(
        default_factory=ValuesRecord, description="What to add, keeping existing values."
    )
