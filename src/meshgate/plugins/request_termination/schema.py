"""request-termination config, as Kong's: status, message or body, echo, trigger."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from meshgate.proxy.filters.api import PluginConfig

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


class Config(PluginConfig):
    status_code: int = Field(default=503, ge=100, le=599, description="The response code to send.")
    message: str | None = Field(
        default=None,
        description='The message to send, as {"message": ...} JSON '
        "(default: the standard message of the status).",
    )
    content_type: str | None = Field(
        default=None, description="Content type of the raw response configured with `body`."
    )
    body: str | None = Field(
        default=None, description="The raw response body to send (exclusive with `message`)."
    )
    echo: bool = Field(
        default=False,
        description="Send back a copy of the request, for debugging.",
    )
    trigger: str | None = Field(
        default=None,
        description="Terminate only when a header or query argument of this name is present.",
    )

    @model_validator(mode="after")
    def _exclusive(self) -> Config:
        if self.message and (self.content_type or self.body):
            raise ValueError("message cannot be used with content_type or body")
        if self.content_type and not self.body:
            raise ValueError("content_type requires a body")
        if self.echo and (self.content_type or self.body):
            raise ValueError("echo cannot be used with content_type and body")
        if self.trigger is not None and not _HEADER_NAME.match(self.trigger):
            raise ValueError("trigger: bad header name")
        return self
