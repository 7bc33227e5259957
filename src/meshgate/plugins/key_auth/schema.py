"""key-auth config, as Kong's (3.9)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from meshgate.proxy.filters.api import PluginConfig

_HEADER_NAME = re.compile(r"[a-zA-Z0-9_-]+\Z")


def header_name(name: str) -> str:
    """Kong's ``typedefs.header_name`` rule."""
    if not name:
        raise ValueError("no header name provided")
    if not _HEADER_NAME.match(name):
        raise ValueError(
            f"bad header name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        )
    return name


HeaderName = Annotated[str, AfterValidator(header_name)]


class Config(PluginConfig):
    key_names: tuple[HeaderName, ...] = Field(
        default=("apikey",),
        min_length=1,
        description="Parameter names (header, query argument, body field) where the plugin "
        "looks for a key; only A-Z, a-z, 0-9, '_' and '-'.",
    )
    hide_credentials: bool = Field(
        default=False, description="Strip the key from the request before proxying it."
    )
    anonymous: str | None = Field(
        default=None,
        description="Consumer id or username to use as an 'anonymous' consumer when "
        "authentication fails (default: fail with 401).",
    )
    key_in_header: bool = Field(default=True, description="Look for the key in request headers.")
    key_in_query: bool = Field(default=True, description="Look for the key in the query string.")
    key_in_body: bool = Field(
        default=False,
        description="Look for the key in the request body (application/x-www-form-urlencoded, "
        "application/json, multipart/form-data).",
    )
    run_on_preflight: bool = Field(
        default=True,
        description="Authenticate OPTIONS preflight requests too (false: always let them through).",
    )
    realm: str | None = Field(
        default=None,
        description="The realm attribute of the WWW-Authenticate header sent on failure.",
    )
