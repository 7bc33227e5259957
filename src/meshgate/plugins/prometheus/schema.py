"""prometheus config, as Kong's: which metric groups to collect (all off by default)."""

from __future__ import annotations

from pydantic import Field

from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig):
    per_consumer: bool = Field(
        default=False,
        description="Fill the `consumer` label of `kong_http_requests_total` and "
        "`kong_bandwidth_bytes` with the consumer's username.",
    )
    status_code_metrics: bool = Field(
        default=False, description="Collect `kong_http_requests_total` (status codes)."
    )
    ai_metrics: bool = Field(
        default=False, description="Accepted for Kong compatibility; meshgate has no AI metrics."
    )
    latency_metrics: bool = Field(
        default=False,
        description="Collect `kong_request_latency_ms`, `kong_upstream_latency_ms` and "
        "`kong_kong_latency_ms`.",
    )
    bandwidth_metrics: bool = Field(
        default=False, description="Collect `kong_bandwidth_bytes` (ingress/egress)."
    )
    upstream_health_metrics: bool = Field(
        default=False,
        description="Export `kong_upstream_target_health` (node-wide: on when any instance "
        "asks for it).",
    )
    wasm_metrics: bool = Field(
        default=False, description="Accepted for Kong compatibility; meshgate has no Wasm."
    )
