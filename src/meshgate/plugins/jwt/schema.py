"""jwt config, as Kong's (3.9)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from meshgate.proxy.filters.api import PluginConfig


def _as_set(values: tuple[str, ...]) -> tuple[str, ...]:
    """Kong's ``set`` fields: duplicates dropped, order kept."""
    return tuple(dict.fromkeys(values))


class Config(PluginConfig):
    uri_param_names: tuple[str, ...] = Field(
        default=("jwt",), description="Query string parameters inspected for a JWT."
    )
    cookie_names: tuple[str, ...] = Field(default=(), description="Cookies inspected for a JWT.")
    header_names: tuple[str, ...] = Field(
        default=("authorization",),
        description="Headers inspected for a JWT (as 'Bearer <token>').",
    )
    key_claim_name: str = Field(
        default="iss",
        min_length=1,
        description="The claim (read from the payload, then the header) naming the secret's key.",
    )
    secret_is_base64: bool = Field(
        default=False,
        description="The credentials' secrets are base64 encoded (sign with the decoded secret).",
    )
    claims_to_verify: tuple[Literal["exp", "nbf"], ...] | None = Field(
        default=None, description="Registered claims to verify: exp and/or nbf."
    )
    anonymous: str | None = Field(
        default=None,
        description="Consumer id or username to use as an 'anonymous' consumer when "
        "authentication fails (default: fail with 401).",
    )
    run_on_preflight: bool = Field(
        default=True,
        description="Authenticate OPTIONS preflight requests too (false: always let them through).",
    )
    maximum_expiration: float = Field(
        default=0,
        ge=0,
        le=31536000,
        description="Refuse tokens whose exp is more than this many seconds ahead (0: no limit); "
        "requires exp in claims_to_verify.",
    )
    realm: str | None = Field(
        default=None,
        description="The realm attribute of the WWW-Authenticate header sent on failure.",
    )

    @field_validator("uri_param_names", "cookie_names", "header_names")
    @classmethod
    def _dedupe(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return _as_set(values)

    @field_validator("claims_to_verify")
    @classmethod
    def _dedupe_claims(
        cls, values: tuple[Literal["exp", "nbf"], ...] | None
    ) -> tuple[Literal["exp", "nbf"], ...] | None:
        return None if values is None else tuple(dict.fromkeys(values))

    @model_validator(mode="after")
    def _maximum_expiration_needs_exp(self) -> Config:
        if self.maximum_expiration > 0 and "exp" not in (self.claims_to_verify or ()):
            raise ValueError(
                "failed conditional validation given value of field 'config.maximum_expiration': "
                "claims_to_verify must contain 'exp'"
            )
        return self
