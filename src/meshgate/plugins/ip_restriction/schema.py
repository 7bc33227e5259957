"""ip-restriction config, as Kong's: ``allow`` / ``deny`` lists of IPv4/IPv6 addresses or CIDR
ranges (at least one of them), the refusal ``status`` and ``message``."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator, model_validator

from meshgate.proxy.filters.api import PluginConfig


def check_ip_or_cidr(value: str) -> str:
    """Kong's ``typedefs.ip_or_cidr``: an address or a network (host bits may be set)."""
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"invalid ip or cidr range: '{value}'") from None
    return value


class Config(PluginConfig):
    allow: list[str] | None = Field(
        default=None, description="IPs or CIDR ranges to allow (all others are refused)."
    )
    deny: list[str] | None = Field(
        default=None, description="IPs or CIDR ranges to refuse (checked before `allow`)."
    )
    status: int | None = Field(
        default=None, ge=100, le=599, description="Status of refusals (default 403)."
    )
    message: str | None = Field(
        default=None,
        description="Message of refusals (default 'IP address not allowed: <client ip>').",
    )

    @field_validator("allow", "deny")
    @classmethod
    def _networks(cls, values: list[str] | None) -> list[str] | None:
        if values is not None:
            for value in values:
                check_ip_or_cidr(value)
        return values

    @model_validator(mode="after")
    def _one_list(self) -> Config:
        if self.allow is None and self.deny is None:
            raise ValueError(
                "at least one of these fields must be non-empty: 'config.allow', 'config.deny'"
            )
        return self
