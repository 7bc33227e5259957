"""kafka-log config: Kong's fields (topic, producer settings, ``queue``) plus the backend.

``custom_fields_by_lua`` is refused when set (no Lua).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from meshgate.events.http_api.settings import BackendFields
from meshgate.plugins._shared.queue_schema import QueueConfig
from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig, BackendFields):
    topic: str = Field(min_length=1, description="The topic log records go to.")
    producer_request_acks: Literal[-1, 0, 1] = Field(
        default=1, description="-1: all in-sync replicas, 1: the leader, 0: none."
    )
    producer_request_timeout: int = Field(default=2000, ge=1, description="Produce wait in ms.")
    producer_request_limits_messages_per_request: int = Field(default=200, ge=1)
    producer_request_limits_bytes_per_request: int = Field(default=1048576, ge=1)
    producer_request_retries_max_attempts: int = Field(default=10, ge=0)
    producer_request_retries_backoff_timeout: int = Field(default=100, ge=0)
    producer_async: bool = Field(default=True, description="Accepted (logs are always queued).")
    producer_async_flush_timeout: int = Field(default=1000, ge=1)
    producer_async_buffering_limits_messages_in_memory: int = Field(default=50000, ge=1)
    compression_type: str | None = Field(default=None, description="Kafka batch compression.")
    custom_fields_by_lua: dict[str, Any] | None = Field(
        default=None, description="Not supported (no Lua); must be empty."
    )
    key_field: str | None = Field(
        default=None,
        description="Dotted serializer field used as record key (e.g. consumer.id, route.id).",
    )
    queue: QueueConfig = Field(default_factory=QueueConfig, description="Batching and retries.")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.custom_fields_by_lua:
            raise ValueError("custom_fields_by_lua is not supported")
        return self
