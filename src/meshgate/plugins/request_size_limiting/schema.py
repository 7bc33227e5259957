"""request-size-limiting config, as Kong's: the allowed size, its unit, and whether a
Content-Length is required."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshgate.proxy.filters.api import PluginConfig

UNIT_BYTES = {"bytes": 1, "kilobytes": 1024, "megabytes": 1048576}


class Config(PluginConfig):
    allowed_payload_size: int = Field(
        default=128,
        ge=0,
        description="Allowed request payload size, in `size_unit`s (default 128 megabytes).",
    )
    size_unit: Literal["megabytes", "kilobytes", "bytes"] = Field(
        default="megabytes", description="The unit of `allowed_payload_size`."
    )
    require_content_length: bool = Field(
        default=False,
        description="Refuse (411) requests without a valid Content-Length (chunked bodies are "
        "still accepted, and counted).",
    )
