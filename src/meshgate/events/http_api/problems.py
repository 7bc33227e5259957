"""``HttpProblem``: an HTTP error answer, and the one mapping from event-log errors to it.

unknown topic/partition → 404; record too large → 413; log unavailable or too slow → 503 with
``Retry-After``; invalid topic → 400; offset past the end → 416; anything else → 502. Each
carries a ``meshgate-error`` reason header like the engine's own errors.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from meshgate.events.errors import (
    BrokerUnavailable,
    EventLogError,
    InvalidTopic,
    OffsetOutOfRange,
    RecordTooLarge,
    UnknownPartition,
    UnknownTopic,
)


class HttpProblem(Exception):
    """Answer ``status`` with JSON ``body`` (default ``{"message": message}``) and headers."""

    def __init__(
        self,
        status: int,
        message: str,
        reason: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.extra_headers = dict(headers or {})
        self.body: dict[str, Any] = dict(body) if body is not None else {"message": message}

    @property
    def headers(self) -> dict[str, str]:
        return {"meshgate-error": self.reason, **self.extra_headers}

    def with_body(self, body: Mapping[str, Any]) -> HttpProblem:
        return HttpProblem(
            self.status, self.message, self.reason, headers=self.extra_headers, body=body
        )


def unavailable(message: str, retry_after: float = 1.0) -> HttpProblem:
    seconds = str(max(1, math.ceil(retry_after)))
    return HttpProblem(503, message, "event-log-unavailable", headers={"Retry-After": seconds})


def problem_for(exc: BaseException) -> HttpProblem:
    """The HTTP answer for an exception from the event log (or a timeout waiting for it)."""
    if isinstance(exc, UnknownTopic):
        return HttpProblem(404, f"topic {exc.topic!r} not found", "event-topic-unknown")
    if isinstance(exc, UnknownPartition):
        return HttpProblem(404, str(exc), "event-partition-unknown")
    if isinstance(exc, RecordTooLarge):
        return HttpProblem(413, str(exc), "event-record-too-large")
    if isinstance(exc, BrokerUnavailable):
        return unavailable(f"event log unavailable: {exc.reason}", exc.retry_after)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return unavailable("event log did not answer in time")
    if isinstance(exc, InvalidTopic):
        return HttpProblem(400, str(exc), "event-topic-invalid")
    if isinstance(exc, OffsetOutOfRange):
        return HttpProblem(416, str(exc), "event-offset-out-of-range")
    if isinstance(exc, EventLogError):
        return HttpProblem(502, f"event log error: {exc}", "event-log-error")
    raise exc
