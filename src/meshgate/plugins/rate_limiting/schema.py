"""rate-limiting config, as Kong 3.x's: limits per period, what to limit by, the counter policy
(``local`` or ``redis``; Kong's ``cluster`` is refused) and the nested ``redis`` record (the
deprecated flat ``redis_host``… fields are accepted and moved into it)."""

from __future__ import annotations

import ipaddress
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from meshgate.proxy.filters.api import PluginConfig

PERIODS = ("second", "minute", "hour", "day", "month", "year")
SYNC_RATE_REALTIME = -1
_HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_HOSTNAME = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?\Z"
)
# Kong's deprecated flat fields → their place in the ``redis`` record
_FLAT_REDIS = {
    "redis_host": "host",
    "redis_port": "port",
    "redis_password": "password",
    "redis_username": "username",
    "redis_ssl": "ssl",
    "redis_ssl_verify": "ssl_verify",
    "redis_server_name": "server_name",
    "redis_timeout": "timeout",
    "redis_database": "database",
}


def _positive_number(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    if not math.isfinite(value) or value <= 0:
        raise ValueError("value must be greater than 0")
    return value


Limit = Annotated[int | float | None, BeforeValidator(_positive_number)]


def check_header_name(name: str) -> str:
    """Kong's ``typedefs.header_name`` rule."""
    if not name:
        raise ValueError("no header name provided")
    if not _HEADER_NAME.match(name):
        raise ValueError(
            f"bad header name '{name}', allowed characters are A-Z, a-z, 0-9, '_', and '-'"
        )
    return name


def check_host(host: str) -> str:
    """Kong's ``typedefs.host``: an IP address or a host name, without a port."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host
    except ValueError:
        pass
    if ":" in host:
        raise ValueError("must not have a port")
    if len(host) > 253 or not _HOSTNAME.match(host):
        raise ValueError(f"invalid value: {host}")
    return host


def number_text(value: float) -> str:
    """A limit as Kong prints it in a header (5, not 5.0)."""
    if type(value) is int:
        return str(value)
    return str(int(value)) if float(value).is_integer() else str(value)


def move_flat_redis_fields(data: Any) -> Any:
    """Kong's deprecated flat ``redis_*`` fields moved into the nested ``redis`` record."""
    if not isinstance(data, dict) or not any(k in data for k in _FLAT_REDIS):
        return data
    data = dict(data)
    nested = data.get("redis")
    redis = dict(nested) if isinstance(nested, dict) else {}
    for flat, name in _FLAT_REDIS.items():
        if flat not in data:
            continue
        value = data.pop(flat)
        if value is None:
            continue
        if name in redis and redis[name] is not None and redis[name] != value:
            raise ValueError(
                f"both deprecated {flat} and redis.{name} are set, and their values differ"
            )
        redis[name] = value
    data["redis"] = redis
    return data


def refuse_cluster_policy(value: Any) -> Any:
    if value == "cluster":
        raise ValueError(
            "the 'cluster' policy is not supported by meshgate (it counts in Kong's "
            "database); use 'local' (node-wide) or 'redis' (cluster-wide)"
        )
    return value


def check_period_order(limits: list[tuple[str, float | None]]) -> None:
    """Kong's rule: a longer period's limit may not be lower than a shorter one's."""
    for i, (lower, v1) in enumerate(limits):
        if v1 is None:
            continue
        for upper, v2 in limits[i + 1 :]:
            if v2 is not None and v2 < v1:
                raise ValueError(
                    f"The limit for {upper}({v2:.1f}) cannot be lower than "
                    f"the limit for {lower}({v1:.1f})"
                )


class RedisConfig(PluginConfig):
    host: str | None = Field(default=None, description="Redis host (no port).")
    port: int = Field(default=6379, ge=0, le=65535, description="Redis port.")
    timeout: int = Field(
        default=2000, ge=0, le=2**31 - 2, description="Connect/read timeout in milliseconds."
    )
    username: str | None = Field(default=None, description="Redis ACL user (Redis 6+).")
    password: str | None = Field(default=None, description="Password sent with AUTH.")
    database: int = Field(default=0, ge=0, description="Redis database number.")
    ssl: bool = Field(default=False, description="Connect with TLS.")
    ssl_verify: bool = Field(default=False, description="Verify the server certificate.")
    server_name: str | None = Field(default=None, description="SNI name for the TLS handshake.")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else check_host(value)


class Config(PluginConfig):
    second: Limit = Field(default=None, description="Requests allowed per second.")
    minute: Limit = Field(default=None, description="Requests allowed per minute.")
    hour: Limit = Field(default=None, description="Requests allowed per hour.")
    day: Limit = Field(default=None, description="Requests allowed per day.")
    month: Limit = Field(default=None, description="Requests allowed per month.")
    year: Limit = Field(default=None, description="Requests allowed per year.")
    limit_by: Literal["consumer", "credential", "ip", "service", "header", "path"] = Field(
        default="consumer",
        description="What requests are counted by (falls back to the client IP when absent).",
    )
    header_name: str | None = Field(
        default=None, description="The header whose value is counted (limit_by = header)."
    )
    path: str | None = Field(
        default=None, description="The request path that is counted (limit_by = path)."
    )
    policy: Literal["local", "redis"] = Field(
        default="local",
        description="Where counters live: 'local' (node-wide, shared by the workers) or "
        "'redis' (shared by every node using the same Redis).",
    )
    fault_tolerant: bool = Field(
        default=True,
        description="Proxy requests when Redis cannot be reached (true) or answer 500 (false).",
    )
    redis: RedisConfig = Field(default_factory=RedisConfig, description="Redis connection.")
    hide_client_headers: bool = Field(
        default=False, description="Do not send the rate-limit headers to the client."
    )
    error_code: int = Field(
        default=429, ge=100, le=599, description="Status sent when a limit is exceeded."
    )
    error_message: str = Field(
        default="API rate limit exceeded", description="Message sent when a limit is exceeded."
    )
    sync_rate: float = Field(
        default=SYNC_RATE_REALTIME,
        allow_inf_nan=False,
        description="Kong's batching interval for the redis policy; meshgate always counts "
        "synchronously (exact), so any value behaves as -1.",
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
    def _header_name(cls, value: str | None) -> str | None:
        return None if value is None else check_header_name(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError("should start with: /")
        if "//" in value:
            raise ValueError("must not have empty segments")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        limits = [(p, getattr(self, p)) for p in PERIODS]
        if all(v is None for _, v in limits):
            names = ", ".join(f"'config.{p}'" for p in PERIODS)
            raise ValueError(f"at least one of these fields must be non-empty: {names}")
        check_period_order(limits)
        if self.policy != "redis" and self.sync_rate != SYNC_RATE_REALTIME:
            raise ValueError("sync_rate can only be used with the redis policy")
        if self.policy == "redis":
            if self.sync_rate != SYNC_RATE_REALTIME and self.sync_rate < 0.02:
                raise ValueError("sync_rate must be greater than 0.02, or -1 to disable")
            if self.redis.host is None:
                raise ValueError("redis.host: required field missing (policy is 'redis')")
        if self.limit_by == "header" and self.header_name is None:
            raise ValueError("header_name: required field missing (limit_by is 'header')")
        if self.limit_by == "path" and self.path is None:
            raise ValueError("path: required field missing (limit_by is 'path')")
        return self
