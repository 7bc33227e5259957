"""hmac-auth config, as Kong's (3.9)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshgate.proxy.filters.api import PluginConfig

Algorithm = Literal["hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"]


class Config(PluginConfig):
    hide_credentials: bool = Field(
        default=False,
        description="Strip the credential (the Authorization header) before proxying.",
    )
    clock_skew: float = Field(
        default=300,
        gt=0,
        description="Largest accepted difference, in seconds, between the Date (or X-Date) "
        "header and the gateway's clock (replay protection).",
    )
    anonymous: str | None = Field(
        default=None,
        description="Consumer id or username to use as an 'anonymous' consumer when "
        "authentication fails (default: fail with 401).",
    )
    validate_request_body: bool = Field(
        default=False,
        description="Check the request body against the Digest header (SHA-256=<base64>).",
    )
    enforce_headers: tuple[str, ...] = Field(
        default=(), description="Headers the client must at least include in the signature."
    )
    algorithms: tuple[Algorithm, ...] = Field(
        default=("hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"),
        description="HMAC algorithms accepted.",
    )
    realm: str | None = Field(
        default=None,
        description="The realm attribute of the WWW-Authenticate header sent on failure.",
    )
