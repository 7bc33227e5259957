"""MeshRetry: when requests to a destination are tried again.

::

    type: MeshRetry
    name: orders-retry
    spec:
      targetRef: {kind: Mesh}
      to:
        - targetRef: {kind: MeshService, name: orders}
          default:
            http:
              numRetries: 3
              perTryTimeout: 1s
              backOff: {baseInterval: 25ms, maxInterval: 250ms}
              retryOn: [5xx, ConnectFailure, "409"]     # names, or status codes
            tcp: {maxConnectAttempt: 3}
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from meshgate.resources.mesh.base import Duration, MeshModel
from meshgate.resources.mesh.policy import PolicySpec, ToItem

TYPE = "MeshRetry"
RetryOnName = Literal[
    "5xx",
    "GatewayError",
    "Reset",
    "Retriable4xx",
    "ConnectFailure",
    "EnvoyRatelimited",
    "RefusedStream",
    "Http3PostConnectFailure",
]
RETRY_ON_NAMES: tuple[str, ...] = get_args(RetryOnName)


class BackOff(MeshModel):
    base_interval: Duration | None = None
    max_interval: Duration | None = None


class HTTPRetry(MeshModel):
    num_retries: int | None = Field(default=None, ge=0, le=100)
    per_try_timeout: Duration | None = None
    back_off: BackOff | None = None
    retry_on: list[str] | None = None

    @field_validator("retry_on")
    @classmethod
    def _known_conditions(cls, values: list[str] | None) -> list[str] | None:
        for value in values or ():
            if value in RETRY_ON_NAMES:
                continue
            if value.isdigit() and 100 <= int(value) <= 599:
                continue
            raise ValueError(
                f"unknown retry condition '{value}': expected an HTTP status or one of "
                + ", ".join(RETRY_ON_NAMES)
            )
        return values


class TCPRetry(MeshModel):
    max_connect_attempt: int | None = Field(default=None, ge=1, le=100)


class RetryConf(MeshModel):
    http: HTTPRetry | None = None
    tcp: TCPRetry | None = None


class MeshRetrySpec(PolicySpec):
    to: list[ToItem[RetryConf]] = Field(min_length=1)
