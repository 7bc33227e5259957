"""basic-auth config, as Kong's (3.9)."""

from __future__ import annotations

from pydantic import Field

from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    anonymous: str | None = Field(
        default=None,
        description="Consumer id or username to use as an 'anonymous' consumer when "
        "authentication fails (default: fail with 401).",
    )
    hide_credentials: bool = Field(
        default=False,
        description="Strip the credential (the Authorization header) before proxying.",
    )
    realm: str = Field(
        default="service",
        description="The realm attribute of the WWW-Authenticate header sent on failure.",
    )
