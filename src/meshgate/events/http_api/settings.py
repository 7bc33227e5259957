"""Config fields every ``kafka-*`` plugin shares: which event log, and how to reach it.

Kong's kafka plugins talk to Kafka only (``bootstrap_servers``, ``authentication``,
``security``); ours add ``backend`` (``embedded`` — the default — or ``kafka``) and
``embedded.path``. Plugin ``Config`` classes inherit ``BackendFields`` next to
``PluginConfig``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from meshgate.events.api import DEFAULT_MAX_RECORD_BYTES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BootstrapServer(_Strict):
    host: str = Field(description="Broker host name or address.")
    port: int = Field(ge=1, le=65535, description="Broker port.")


class Authentication(_Strict):
    strategy: Literal["sasl"] | None = Field(default=None, description="sasl, or none.")
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, description="SASL mechanism."
    )
    user: str | None = Field(default=None, description="SASL user name.")
    password: str | None = Field(default=None, description="SASL password.")
    tokenauth: bool | None = Field(default=None, description="Delegation token authentication.")


class Security(_Strict):
    ssl: bool = Field(default=False, description="Connect to the brokers with TLS.")
    ssl_verify: bool = Field(default=True, description="Verify the brokers' certificates.")
    certificate_id: str | None = Field(
        default=None, description="Id of a certificate entity presented as client certificate."
    )


class EmbeddedSettings(_Strict):
    path: str | None = Field(
        default=None,
        description="Data directory (default $MESHGATE_RUNTIME_DIR/events, else ./meshgate-events).",
    )


class BackendFields(_Strict):
    backend: Literal["embedded", "kafka"] = Field(
        default="embedded", description="The event log: the embedded on-disk log, or Kafka."
    )
    embedded: EmbeddedSettings = Field(
        default_factory=EmbeddedSettings, description="Embedded log settings."
    )
    bootstrap_servers: list[BootstrapServer] | None = Field(
        default=None, description="Kafka bootstrap brokers (backend kafka)."
    )
    authentication: Authentication = Field(
        default_factory=Authentication, description="SASL settings (backend kafka)."
    )
    security: Security = Field(default_factory=Security, description="TLS settings.")
    cluster_name: str | None = Field(
        default=None, description="Accepted for Kong compatibility (one client per broker set)."
    )
    timeout: int = Field(default=10000, ge=1, description="Socket timeout in ms.")
    keepalive: int = Field(default=60000, ge=0, description="Keepalive in ms (Kong).")
    keepalive_enabled: bool = Field(default=False, description="Kong keepalive switch.")
    auto_create_topic: bool = Field(
        default=False, description="Create a missing topic on first use instead of 404."
    )
    auto_create_partitions: int = Field(
        default=1, ge=1, le=10000, description="Partitions of an auto-created topic."
    )
    max_record_bytes: int = Field(
        default=DEFAULT_MAX_RECORD_BYTES, ge=1, description="Largest record accepted (413)."
    )

    @model_validator(mode="after")
    def _kafka_needs_brokers(self) -> BackendFields:
        if self.backend == "kafka" and not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is required when backend is kafka")
        if self.authentication.strategy == "sasl" and not (
            self.authentication.mechanism and self.authentication.user
        ):
            raise ValueError("authentication: sasl needs mechanism and user")
        return self
