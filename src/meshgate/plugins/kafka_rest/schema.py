"""kafka-rest config: which event log, which topics, produce acks and limits, topic ACL.

A route-level plugin rather than a new route type: routes stay Kong entities (decK, Admin
API, the compiler untouched), and auth/rate-limit plugins on the same route run before it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from meshgate.events.http_api.acl import TopicAclConfig
from meshgate.events.http_api.settings import BackendFields
from meshgate.proxy.filters.api import PluginConfig


class Config(PluginConfig, BackendFields):
    allowed_topics: list[str] | None = Field(
        default=None, description="Topics this API may write (none: any topic; 404 if missing)."
    )
    producer_request_acks: Literal[-1, 0, 1] = Field(
        default=-1, description="-1: all in-sync replicas, 1: the leader, 0: none."
    )
    producer_request_timeout: int = Field(default=10000, ge=1, description="Produce wait in ms.")
    max_request_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1, description="Largest request body (413 beyond)."
    )
    cluster_id: str = Field(default="meshgate", description="cluster_id in v3 answers/paths.")
    acl: TopicAclConfig | None = Field(default=None, description="Topic ACL (produce).")
