"""response-ratelimiting config, as Kong 3.x's: named limits (each with per-period values), the
response header the upstream reports usage in, what to count by, and the counter policy
(``local`` or ``redis``, with rate-limiting's ``redis`` record and deprecated flat fields)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from meshgate.plugins.rate_limiting.schema import (
    PERIODS,
    Limit,
    RedisConfig,
    check_header_name,
    check_period_order,
    move_flat_redis_fields,
    refuse_cluster_policy,
)
from meshgate.proxy.filters.api import PluginConfig

# A limit name ends up in header names (X-RateLimit-Remaining-<name>): header-token characters.
_LIMIT_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


class PeriodLimits(PluginConfig):
    second: Limit = Field(default=None, description="Units allowed per second.")
    minute: Limit = Field(default=None, description="Units allowed per minute.")
    hour: Limit = Field(default=None, description="Units allowed per hour.")
    day: Limit = Field(default=None, description="Units allowed per day.")
    month: Limit = Field(default=None, description="Units allowed per month.")
    year: Limit = Field(default=None, description="Units allowed per year.")

    @model_validator(mode="after")
    def _checks(self) -> PeriodLimits:
        limits = [(p, getattr(self, p)) for p in PERIODS]
        if all(v is None for _, v in limits):
            names = ", ".join(f"'{p}'" for p in PERIODS)
            raise ValueError(f"at least one of these fields must be non-empty: {names}")
        check_period_order(limits)
        return self


class Config(PluginConfig):
    limits: dict[str, PeriodLimits] = Field(
        min_length=1,
        description="Limit name -> units allowed per period; the upstream spends units with "
        "the `header_name` response header (`<name>=<units>, ...`).",
    )
    header_name: str = Field(
        default="x-kong-limit",
        description="Response header in which the upstream reports the units a request used.",
    )
    limit_by: Literal["consumer", "credential", "ip"] = Field(
        default="consumer",
        description="What usage is counted by (falls back to the client IP when absent).",
    )
    policy: Literal["local", "redis"] = Field(
        default="local",
        description="Where counters live: 'local' (node-wide) or 'redis' (every node sharing it).",
    )
    fault_tolerant: bool = Field(
        default=True,
        description="Proxy requests when Redis cannot be reached (true) or answer 500 (false).",
    )
    redis: RedisConfig = Field(default_factory=RedisConfig, description="Redis connection.")
    block_on_first_violation: bool = Field(
        default=False,
        description="Refuse a request (429) as soon as any period of any limit is used up, "
        "before it reaches the upstream.",
    )
    hide_client_headers: bool = Field(
        default=False, description="Do not send the X-RateLimit-* headers to the client."
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_redis_fields(cls, data: Any) -> Any:
        return move_flat_redis_fields(data)

    @field_validator("policy", mode="before")
    @classmethod
    def _no_cluster(cls, value: Any) -> Any:
        return refuse_cluster_policy(value)

    @field_validator("header_name")
    @classmethod
    def _header_name(cls, value: str) -> str:
        return check_header_name(value)

    @field_validator("limits")
    @classmethod
    def _limit_names(cls, value: dict[str, PeriodLimits]) -> dict[str, PeriodLimits]:
        for name in value:
            if not _LIMIT_NAME.match(name):
                raise ValueError(f"limit name {name!r} must be usable in a header name")
        return value

    @model_validator(mode="after")
    def _redis_host(self) -> Config:
        if self.policy == "redis" and self.redis.host is None:
            raise ValueError("redis.host: required field missing (policy is 'redis')")
        return self
