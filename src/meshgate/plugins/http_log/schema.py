"""http-log config, as Kong 3.x's: endpoint, method, content type, timeouts, headers and the
``queue`` record; the deprecated ``queue_size``/``flush_timeout``/``retry_count`` are
accepted (the first two map onto ``queue``), ``custom_fields_by_lua`` is refused."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, field_validator, model_validator

from meshgate.plugins._shared.queue_schema import QueueConfig
from meshgate.plugins._shared.validators import check_header_name, check_url, refuse_lua
from meshgate.proxy.filters.api import PluginConfig

_FORBIDDEN_HEADERS = {
    "host": "Host",
    "content-length": "Content-Length",
    "content-type": "Content-Type",
}


def _one_of(*allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of: {', '.join(allowed)}")
        return value

    return AfterValidator(check)


class Config(PluginConfig):
    http_endpoint: Annotated[str, AfterValidator(check_url)] = Field(
        description="The HTTP URL the log records are sent to (user info becomes Basic auth)."
    )
    method: Annotated[str, _one_of("POST", "PUT", "PATCH")] = Field(
        default="POST", description="The method used to send the records."
    )
    content_type: Annotated[str, _one_of("application/json", "application/json; charset=utf-8")] = (
        Field(default="application/json", description="The type of data sent.")
    )
    timeout: float = Field(default=10000, ge=0, description="Send timeout in milliseconds.")
    keepalive: float = Field(
        default=60000, ge=0, description="How long an idle connection is kept, in milliseconds."
    )
    retry_count: int | None = Field(
        default=None, description="Deprecated, ignored (use queue.max_retry_time)."
    )
    queue_size: int | None = Field(
        default=None, ge=1, description="Deprecated: queue.max_batch_size."
    )
    flush_timeout: float | None = Field(
        default=None, ge=0, description="Deprecated: queue.max_coalescing_delay."
    )
    headers: dict[str, str] | None = Field(
        default=None, description="Headers added to the requests sent to the endpoint."
    )
    queue: QueueConfig = Field(default_factory=QueueConfig, description="Batching and retries.")
    custom_fields_by_lua: Annotated[dict[str, str] | None, AfterValidator(refuse_lua)] = Field(
        default=None, description="Not supported (Lua code)."
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in value or {}:
            check_header_name(name)
            forbidden = _FORBIDDEN_HEADERS.get(name.lower())
            if forbidden:
                raise ValueError(f"cannot contain '{forbidden}' header")
        return value

    @model_validator(mode="after")
    def _userinfo(self) -> Config:
        if urlsplit(self.http_endpoint).username is not None and any(
            name.lower() == "authorization" for name in self.headers or {}
        ):
            raise ValueError(
                "specifying both an 'Authorization' header and user info in 'http_endpoint' "
                "is not allowed"
            )
        return self

    def effective_queue(self) -> dict[str, Any]:
        """The queue limits with the deprecated fields folded in (as Kong's shorthands)."""
        batch = self.queue.max_batch_size
        if self.queue_size is not None and batch == 1:
            batch = self.queue_size
        delay = self.queue.max_coalescing_delay
        if self.flush_timeout is not None and delay == 1:
            delay = self.flush_timeout
        return {"max_batch_size": batch, "delay": delay}
