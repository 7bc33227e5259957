"""kafka-consume config: Kong's fields (topics, mode, auto_offset_reset, commit_strategy,
message_deserializer, consumer group) plus the event gateway's (backend, cursor secret,
limits, value format, CloudEvents rendering, topic ACL)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meshgate.events.http_api.acl import TopicAclConfig
from meshgate.events.http_api.settings import BackendFields
from meshgate.proxy.filters.api import PluginConfig


class TopicRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Topic name.")


class ConsumerGroup(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["none", "manual", "kong_consumer"] = Field(
        default="none",
        description="none: stateless cursors (group only if the request names one); manual: "
        "consumer_group_id; kong_consumer: the authenticated consumer's username.",
    )
    consumer_group_id: str | None = Field(default=None, description="Group for mode manual.")


class Config(PluginConfig, BackendFields):
    topics: list[TopicRef] = Field(min_length=1, description="Topics this route may read.")
    mode: Literal["http-get", "server-sent-events", "websocket"] = Field(
        default="http-get", description="How records are delivered."
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="latest", description="Start when the request names no position."
    )
    commit_strategy: Literal["auto", "off"] = Field(
        default="auto", description="Group mode: commit after each delivered batch, or never."
    )
    message_deserializer: Literal["noop", "json"] | None = Field(
        default=None, description="Kong's switch: json → value_format json, noop → string."
    )
    value_format: Literal["json", "string", "binary"] = Field(
        default="json", description="How values are rendered (see events.http_api.render)."
    )
    consumer_group: ConsumerGroup = Field(
        default_factory=ConsumerGroup, description="Consumer-group mode."
    )
    group_id_query_arg: str | None = Field(
        default="group_id", description="Query argument selecting group mode (null: refused)."
    )
    cursor_secret: str | None = Field(
        default=None,
        description="Secret signing cursors; set the same on every node (required for >1 node).",
    )
    max_records: int = Field(default=100, ge=1, le=10000, description="Records per batch.")
    max_bytes: int = Field(default=1024 * 1024, ge=1, description="Bytes per partition fetch.")
    long_poll_timeout: int = Field(
        default=10000, ge=0, le=300000, description="GET waits this long (ms) for a record."
    )
    heartbeat_interval: int = Field(
        default=15000, ge=100, description="SSE comment / WebSocket ping when idle (ms)."
    )
    sse_retry: int = Field(default=1000, ge=0, description="SSE retry: hint (ms).")
    cloudevents: Literal["off", "structured", "binary"] = Field(
        default="off",
        description="Render CloudEvents records as structured JSON, or (GET) one binary-mode "
        "event per response.",
    )
    acl: TopicAclConfig | None = Field(default=None, description="Topic ACL (consume).")

    @model_validator(mode="after")
    def _check(self) -> Config:
        if self.consumer_group.mode == "manual" and not self.consumer_group.consumer_group_id:
            raise ValueError("consumer_group.mode manual needs consumer_group_id")
        return self

    @property
    def effective_value_format(self) -> Literal["json", "string", "binary"]:
        if self.message_deserializer == "json":
            return "json"
        if self.message_deserializer == "noop":
            return "string"
        return self.value_format
