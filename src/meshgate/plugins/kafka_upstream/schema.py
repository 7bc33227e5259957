"""kafka-upstream config: Kong's fields (names and meanings) plus the event gateway's own.

Deviations from Kong, on purpose: ``producer_async`` defaults to false (answer after the log
acknowledged; true answers 202 before), ``message_by_lua_functions`` and ``schema_registry``
are refused when set (no Lua, no schema registry), and ``backend`` defaults to the embedded log.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from meshgate.events.http_api.acl import TopicAclConfig
from meshgate.events.http_api.settings import BackendFields
from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig, BackendFields):
    topic: str = Field(min_length=1, description="The topic records go to.")
    topics_query_arg: str | None = Field(
        default=None, description="Query argument naming the target topic(s), comma-separated."
    )
    allowed_topics: list[str] | None = Field(
        default=None, description="Topics topics_query_arg may name (topic is always allowed)."
    )
    key_query_arg: str | None = Field(
        default=None, description="Query argument whose value becomes the record key."
    )
    key_header: str | None = Field(
        default=None, description="Request header whose value becomes the record key."
    )
    partition: int | None = Field(default=None, ge=0, description="Fixed target partition.")
    forward_method: bool = Field(default=False, description="Include the method (envelope).")
    forward_uri: bool = Field(default=False, description="Include path and query (envelope).")
    forward_headers: bool = Field(default=False, description="Include the headers (envelope).")
    forward_body: bool = Field(default=True, description="Include the body (envelope).")
    message_format: Literal["envelope", "raw"] = Field(
        default="envelope",
        description="envelope: Kong's JSON message; raw: the body is the value, "
        "Content-Type a record header.",
    )
    record_headers: list[str] = Field(
        default_factory=list,
        description="Request headers copied into record headers (allow-list, case-insensitive).",
    )
    cloudevents: bool = Field(
        default=True,
        description="Requests in CloudEvents binary/structured mode become CloudEvents records.",
    )
    producer_request_acks: Literal[-1, 0, 1] = Field(
        default=1, description="-1: all in-sync replicas, 1: the leader, 0: none."
    )
    producer_request_timeout: int = Field(default=2000, ge=1, description="Produce wait in ms.")
    producer_request_limits_messages_per_request: int = Field(default=200, ge=1)
    producer_request_limits_bytes_per_request: int = Field(default=1048576, ge=1)
    producer_request_retries_max_attempts: int = Field(default=10, ge=0)
    producer_request_retries_backoff_timeout: int = Field(default=100, ge=0)
    producer_async: bool = Field(
        default=False, description="Answer 202 before the log acknowledged (Kong: true)."
    )
    producer_async_flush_timeout: int = Field(default=1000, ge=1)
    producer_async_buffering_limits_messages_in_memory: int = Field(
        default=50000, ge=1, description="Async records in flight; beyond, 503."
    )
    compression_type: str | None = Field(default=None, description="Kafka batch compression.")
    message_by_lua_functions: list[str] | None = Field(
        default=None, description="Not supported (no Lua); must be empty."
    )
    schema_registry: dict[str, Any] | None = Field(
        default=None, description="Not supported; must be empty."
    )
    error_handling: dict[str, bool] = Field(
        default_factory=dict, description="return_error_message: include the log's error text."
    )
    idempotency_header: str = Field(
        default="Idempotency-Key", description="Header carrying the client's idempotency key."
    )
    idempotency_window: int = Field(
        default=86400, ge=0, description="Seconds a key is remembered (0: off)."
    )
    idempotency_path: str | None = Field(
        default=None, description="Directory of the idempotency store (default: see docs)."
    )
    idempotency_scope: Literal["node", "cluster"] = Field(
        default="node",
        description="node: a file per node; cluster: answers kept in idempotency_topic of the "
        "event log, so every node replays them, and one key racing on several nodes is "
        "produced once (409 to a waiter whose wait outlasts the timeout).",
    )
    idempotency_topic: str = Field(
        default="meshgate-idempotency",
        min_length=1,
        description="Topic of the cluster-wide idempotency store.",
    )
    reply_topic: str | None = Field(
        default=None, description="Wait for a reply record on this topic (request/reply)."
    )
    reply_timeout: int = Field(default=10000, ge=1, description="Reply wait in ms (then 504).")
    correlation_header: str = Field(
        default="meshgate-correlation-id", description="Record header with the correlation id."
    )
    reply_to_header: str = Field(
        default="meshgate-reply-to", description="Record header naming the reply topic."
    )
    cursor_secret: str | None = Field(
        default=None, description="Node-shared secret signing reply poll tokens."
    )
    acl: TopicAclConfig | None = Field(default=None, description="Topic ACL (produce).")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.message_by_lua_functions:
            raise ValueError("message_by_lua_functions is not supported")
        if self.schema_registry:
            raise ValueError("schema_registry is not supported")
        if not (
            self.forward_method or self.forward_uri or self.forward_headers or self.forward_body
        ):
            raise ValueError("at least one of forward_method, forward_uri, forward_headers, "
                             "forward_body must be true")  # fmt: skip
        unknown = set(self.error_handling) - {"return_error_message"}
        if unknown:
            raise ValueError(f"error_handling: unknown fields {sorted(unknown)}")
        return self
