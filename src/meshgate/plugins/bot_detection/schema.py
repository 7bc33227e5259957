"""bot-detection config, as Kong's: ``allow`` and ``deny`` lists of regular expressions matched
against the User-Agent."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    allow: list[str] = Field(
        default_factory=list,
        description="User-Agent regexes always allowed (checked first, before the bot list).",
    )
    deny: list[str] = Field(default_factory=list, description="User-Agent regexes refused (403).")

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"'{value}' is not a valid regex: {error}") from None
        return values
