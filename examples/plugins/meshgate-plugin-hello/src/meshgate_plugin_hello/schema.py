"""The hello plugin's configuration: typed, described, defaulted, checked at config time."""

from __future__ import annotations

from pydantic import Field, field_validator

from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    greeting: str = Field(
        default="Hello", min_length=1, max_length=100, description="The word to greet with."
    )
    name_header: str = Field(
        default="X-Name",
        pattern=r"^[A-Za-z0-9-]+$",
        description="Request header holding the name to greet (absent: 'world').",
    )
    echo_downstream: bool = Field(
        default=True, description="Also put the greeting on the response to the client."
    )
    delay_ms: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Wait this long before greeting (shows an awaiting access phase).",
    )

    @field_validator("greeting")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text")
        return value
