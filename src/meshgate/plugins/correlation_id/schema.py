"""correlation-id config, as Kong's."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    header_name: str = Field(
        default="Kong-Request-ID",
        pattern=r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$",
        description="The HTTP header name to use for the correlation ID.",
    )
    generator: Literal["uuid", "uuid#counter", "tracker"] = Field(
        default="uuid#counter", description="The generator to use for the correlation ID."
    )
    echo_downstream: bool = Field(
        default=False, description="Whether to echo the header back to downstream (the client)."
    )
