"""opentelemetry config, as Kong 3.x's: ``traces_endpoint`` (``logs_endpoint`` accepted),
headers, ``resource_attributes``, the ``queue`` (default batch 200), timeouts,
``http_response_header_for_traceid``, ``header_type``, ``sampling_rate`` and the
``propagation`` record; the deprecated ``endpoint``/``batch_span_count``/
``batch_flush_delay`` map onto their successors."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from meshgate.plugins._shared.queue_schema import QueueConfig
from meshgate.plugins._shared.validators import check_header_name, check_url
from meshgate.proxy.filters.api import PluginConfig

FORMATS = ("w3c", "datadog", "b3", "b3-single", "jaeger", "ot", "aws", "gcp", "instana")
HEADER_TYPES = ("preserve", "ignore", "b3", "b3-single", "w3c", "jaeger", "ot", "aws", "gcp",
                "datadog", "instana")  # fmt: skip


def _one_of(allowed: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of: {', '.join(allowed)}")
        return value

    return AfterValidator(check)


Format = Annotated[str, _one_of(FORMATS)]
InjectFormat = Annotated[str, _one_of(("preserve", *FORMATS))]
Url = Annotated[str, AfterValidator(check_url)]


class Propagation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    extract: list[Format] | None = Field(
        default=None, description="Formats read from incoming requests, in order."
    )
    clear: list[str] | None = Field(
        default=None, description="Headers removed from the upstream request."
    )
    inject: list[InjectFormat] | None = Field(
        default=None, description="Formats written upstream (`preserve`: the extracted one)."
    )
    default_format: Format = Field(
        default="w3c", description="The format injected when nothing else applies."
    )

    @field_validator("clear")
    @classmethod
    def _clear(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            check_header_name(name)
        return value


class Config(PluginConfig):
    traces_endpoint: Url | None = Field(default=None, description="OTLP/HTTP traces URL.")
    logs_endpoint: Url | None = Field(
        default=None, description="OTLP/HTTP logs URL (accepted; meshgate exports traces only)."
    )
    headers: dict[str, str] | None = Field(
        default=None, description="Headers sent to the collector (e.g. an API token)."
    )
    resource_attributes: dict[str, str] | None = Field(
        default=None, description="Resource attributes (override service.name etc.)."
    )
    queue: QueueConfig = Field(
        default_factory=lambda: QueueConfig(max_batch_size=200), description="Span batching."
    )
    batch_span_count: int | None = Field(
        default=None, description="Deprecated: queue.max_batch_size."
    )
    batch_flush_delay: int | None = Field(
        default=None, description="Deprecated: queue.max_coalescing_delay."
    )
    connect_timeout: int = Field(default=1000, ge=0, le=2**31 - 2, description="Milliseconds.")
    send_timeout: int = Field(default=5000, ge=0, le=2**31 - 2, description="Milliseconds.")
    read_timeout: int = Field(default=5000, ge=0, le=2**31 - 2, description="Milliseconds.")
    http_response_header_for_traceid: str | None = Field(
        default=None, description="Response header that carries the trace id."
    )
    header_type: Annotated[str, _one_of(HEADER_TYPES)] = Field(
        default="preserve", description="Deprecated: the tracing header format (see propagation)."
    )
    sampling_rate: float | None = Field(
        default=None, ge=0, le=1, description="Probability of sampling a new trace (default 1)."
    )
    propagation: Propagation = Field(
        default_factory=Propagation, description="Extraction/injection of trace context."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict) and "endpoint" in data:
            data = dict(data)
            endpoint = data.pop("endpoint")
            if endpoint is not None and data.get("traces_endpoint") is None:
                data["traces_endpoint"] = endpoint
        return data

    @field_validator("headers", "resource_attributes")
    @classmethod
    def _maps(cls, value: dict[str, str] | None, info: Any) -> dict[str, str] | None:
        for name, item in (value or {}).items():
            if info.field_name == "headers":
                check_header_name(name)
            elif item == "":
                raise ValueError("required field missing")
        return value

    @model_validator(mode="after")
    def _one_endpoint(self) -> Config:
        if not self.traces_endpoint and not self.logs_endpoint:
            raise ValueError(
                "at least one of these fields must be non-empty: 'traces_endpoint', 'logs_endpoint'"
            )
        return self
