"""Kong's ``queue`` config record (``kong.tools.queue_schema``), shared by the log plugins."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .queue import QueueLimits


class QueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(
        default=1, ge=1, le=1_000_000, description="Maximum number of entries sent at a time."
    )
    max_coalescing_delay: float = Field(
        default=1.0, ge=0, le=3600,
        description="Seconds after the first queued entry before a partial batch is sent.",
    )  # fmt: skip
    max_entries: int = Field(
        default=10000, ge=1, le=1_000_000,
        description="Maximum number of entries waiting; more are dropped and counted.",
    )  # fmt: skip
    max_bytes: int | None = Field(
        default=None, ge=1, description="Maximum number of bytes waiting (optional)."
    )
    max_retry_time: float = Field(
        default=60.0, description="Seconds before a failing batch is given up (-1: no retries)."
    )
    initial_retry_delay: float = Field(
        default=0.01, ge=0.001, le=1_000_000, description="Seconds before the first retry."
    )
    max_retry_delay: float = Field(
        default=60.0, ge=0.001, le=1_000_000, description="Cap of the exponential backoff."
    )
    concurrency_limit: int = Field(
        default=1, description="Accepted for Kong compatibility (1: one sender per queue)."
    )

    def limits(self, max_batch_size: int | None = None, delay: float | None = None) -> QueueLimits:
        return QueueLimits(
            max_batch_size=max_batch_size or self.max_batch_size,
            max_coalescing_delay=self.max_coalescing_delay if delay is None else delay,
            max_entries=self.max_entries,
            max_bytes=self.max_bytes,
            max_retry_time=self.max_retry_time,
            initial_retry_delay=self.initial_retry_delay,
            max_retry_delay=self.max_retry_delay,
        )

    @field_validator("concurrency_limit")
    @classmethod
    def _one_of(cls, value: int) -> int:
        if value not in (-1, 1):
            raise ValueError("expected one of: -1, 1")
        return value
