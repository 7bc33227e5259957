"""oauth2-introspection config, as Kong's (Enterprise plugin; field names and defaults kept)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from meshgate.proxy.filters.api import PluginConfig

from .client import Endpoint

_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class Config(PluginConfig):
    introspection_url: str = Field(
        description="The introspection endpoint (RFC 7662), an http or https URL."
    )
    authorization_value: str = Field(
        min_length=1,
        description="The Authorization header sent to the introspection endpoint "
        "(usually 'Basic <base64 client_id:client_secret>').",
    )
    token_type_hint: str | None = Field(
        default=None, description="The token_type_hint sent with introspection requests."
    )
    ttl: float = Field(
        default=30,
        ge=0,
        description="Seconds an introspection answer is cached (0: for the token's lifetime).",
    )
    timeout: int = Field(
        default=10000, ge=1, le=2**31 - 2, description="Introspection request timeout (ms)."
    )
    keepalive: int = Field(
        default=60000, ge=0, description="How long an idle connection to the endpoint lives (ms)."
    )
    consumer_by: Literal["username", "client_id"] = Field(
        default="username",
        description="Map the introspection 'username' to a consumer's username, or its "
        "'client_id' to a consumer's custom_id.",
    )
    anonymous: str | None = Field(
        default=None,
        description="Consumer id or username to use as an 'anonymous' consumer when "
        "authentication fails (default: fail with 401).",
    )
    hide_credentials: bool = Field(
        default=True, description="Strip the token from the request before proxying it."
    )
    run_on_preflight: bool = Field(
        default=True,
        description="Authenticate OPTIONS preflight requests too (false: always let them through).",
    )
    introspect_request: bool = Field(
        default=False,
        description="Send X-Request-Path and X-Request-Http-Method of the request to the endpoint.",
    )
    custom_introspection_headers: dict[str, str] = Field(
        default_factory=dict, description="Extra headers sent to the introspection endpoint."
    )
    custom_claims_forward: tuple[str, ...] = Field(
        default=(),
        description="Claims of the introspection answer sent upstream as X-Credential-<claim>.",
    )

    @field_validator("introspection_url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            Endpoint.parse(value)
        except ValueError as exc:
            raise ValueError(f"invalid URL: {exc}") from None
        return value

    @field_validator("authorization_value", "token_type_hint")
    @classmethod
    def _header_value(cls, value: str | None) -> str | None:
        if value is not None and _BAD_VALUE.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("custom_introspection_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"bad header name '{name}'")
            if _BAD_VALUE.search(header_value):
                raise ValueError(f"header '{name}': value must not contain control characters")
        return value

    @field_validator("custom_claims_forward")
    @classmethod
    def _claims(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for claim in value:
            if not _HEADER_NAME.match(claim):
                raise ValueError(f"claim '{claim}' cannot be a header name suffix")
        return value
