"""cors config, as Kong's: allowed origins (exact or regex), methods, headers, exposed headers,
credentials, max_age, private network access, and whether preflights go upstream."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

from meshgate.proxy.filters.api import PluginConfig

Method = Literal["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
METHODS: tuple[Method, ...] = (
    "GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT",
)  # fmt: skip


def _number(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("expected a number")
    return value


class Config(PluginConfig):
    origins: list[str] | None = Field(
        default=None,
        description="Allowed origins for Access-Control-Allow-Origin: '*', exact origins or "
        "regexes.  None: every origin is allowed.",
    )
    headers: list[str] | None = Field(
        default=None,
        description="Access-Control-Allow-Headers (default: echo Access-Control-Request-Headers).",
    )
    exposed_headers: list[str] | None = Field(
        default=None, description="Access-Control-Expose-Headers."
    )
    methods: list[Method] = Field(
        default_factory=lambda: list(METHODS), description="Access-Control-Allow-Methods."
    )
    max_age: Annotated[int | float | None, BeforeValidator(_number)] = Field(
        default=None, description="Access-Control-Max-Age: seconds a preflight may be cached."
    )
    credentials: bool = Field(
        default=False, description="Send Access-Control-Allow-Credentials: true."
    )
    private_network: bool = Field(
        default=False,
        description="Send Access-Control-Allow-Private-Network: true to preflights asking for it.",
    )
    preflight_continue: bool = Field(
        default=False, description="Proxy OPTIONS preflights upstream instead of answering them."
    )
    allow_origin_absent: bool = Field(
        default=True,
        description="Add CORS headers to responses to requests without an Origin (Kong 3.10+).",
    )

    @field_validator("origins")
    @classmethod
    def _origins(cls, values: list[str] | None) -> list[str] | None:
        for value in values or ():
            if value == "*":
                continue
            try:
                re.compile(value)
            except re.error:
                raise ValueError(f"'{value}' is not a valid regex") from None
        return values

    @field_validator("headers", "exposed_headers")
    @classmethod
    def _header_values(cls, values: list[str] | None) -> list[str] | None:
        for value in values or ():
            if any(c in value for c in "\r\n\x00"):
                raise ValueError(f"invalid header value: {value!r}")
        return values
