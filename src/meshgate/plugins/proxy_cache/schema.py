"""proxy-cache config, as Kong's: what is cacheable (status, method, content type), for how
long, the cache key's inputs (query params, headers), the ``memory`` strategy's dictionary and
which diagnostic headers are sent."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from meshgate.proxy.filters.api import PluginConfig


class MemoryConfig(PluginConfig):
    dictionary_name: str = Field(
        default="kong_db_cache",
        min_length=1,
        description="Name of the in-memory cache; instances naming the same one share it.",
    )


class ResponseHeaders(PluginConfig):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    age: bool = Field(default=True, description="Send Age on cache hits.")
    x_cache_status: bool = Field(
        default=True, alias="X-Cache-Status", description="Send X-Cache-Status."
    )
    x_cache_key: bool = Field(default=True, alias="X-Cache-Key", description="Send X-Cache-Key.")


class Config(PluginConfig):
    response_code: list[int] = Field(
        default_factory=lambda: [200, 301, 404],
        min_length=1,
        description="Upstream response statuses considered cacheable.",
    )
    request_method: list[Literal["HEAD", "GET", "POST", "PATCH", "PUT"]] = Field(
        default_factory=lambda: ["GET", "HEAD"],  # type: ignore[arg-type]
        description="Request methods considered cacheable.",
    )
    content_type: list[str] = Field(
        default_factory=lambda: ["text/plain", "application/json"],
        description="Upstream response content types considered cacheable (type/subtype and "
        "parameters must match; '*' wildcards allowed).",
    )
    cache_ttl: int = Field(default=300, gt=0, description="Seconds an entry is fresh.")
    strategy: Literal["memory"] = Field(description="The backing store (OSS: memory).")
    cache_control: bool = Field(
        default=False, description="Respect RFC 7234 Cache-Control in requests and responses."
    )
    ignore_uri_case: bool = Field(default=False, description="Lower-case the path in the key.")
    storage_ttl: int | None = Field(
        default=None, ge=0, description="Seconds to keep entries (independent of freshness)."
    )
    memory: MemoryConfig = Field(default_factory=MemoryConfig, description="memory strategy.")
    vary_query_params: list[str] | None = Field(
        default=None, description="Query params in the key (default: all of them)."
    )
    vary_headers: list[str] | None = Field(
        default=None, description="Request headers in the key (default: none)."
    )
    response_headers: ResponseHeaders = Field(
        default_factory=ResponseHeaders, description="Diagnostic headers to send."
    )

    @field_validator("response_code")
    @classmethod
    def _codes(cls, codes: list[int]) -> list[int]:
        for code in codes:
            if not 100 <= code <= 900:
                raise ValueError(f"value should be between 100 and 900: {code}")
        return codes
