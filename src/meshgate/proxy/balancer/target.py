"""A balancer ``Target`` (one resolved address of an endpoint) and what a pick reads of a request.

Targets are plain mutable records.  When a snapshot is reloaded, the new balancer reuses the
``Target`` objects of the previous one for addresses that still exist, so health, counters,
in-flight requests and latency carry over without copying (requests that started on the old
balancer finish on the very same object).

``HEALTH_EPOCH`` counts health flips of any target in this process.  Balancers cache what they
derive from health (the healthy wheel, the threshold check) and recompute it when the epoch
moves, which keeps ``pick`` free of per-request scans.
"""

from __future__ import annotations

from typing import Protocol


class PickRequest(Protocol):
    """What a balancer may read of a request (implemented by the engine's request object)."""

    @property
    def client_ip(self) -> str: ...

    @property
    def path(self) -> str: ...  # normalized, without the query

    @property
    def query(self) -> str: ...  # raw query string, without "?"

    @property
    def consumer_id(self) -> str | None: ...

    @property
    def uri_captures(self) -> dict[str, str]: ...

    def header(self, name: str) -> str | None: ...  # ``name`` is lower-case

    def cookie(self, name: str) -> str | None: ...

    def set_response_cookie(self, name: str, value: str, path: str) -> None: ...


class _Epoch:
    """A process-wide counter of health flips."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


HEALTH_EPOCH = _Epoch()

# Why a target is down; only passive trips are retried after ``recovery_after``.
DOWN_PASSIVE = "passive"
DOWN_ACTIVE = "active"
DOWN_OPERATOR = "operator"

# Half-open states of a passively tripped target (meshgate's ``recovery_after`` extension).
TRIAL_NONE = 0
TRIAL_OPEN = 1  # eligible for exactly one pick
TRIAL_IN_FLIGHT = 2  # that pick happened; its report decides


class Target:
    """One address of an endpoint: where to connect, its weight, health and live counters."""

    __slots__ = (
        "address",
        "down_reason",
        "ewma",
        "ewma_at",
        "healthy",
        "host",
        "http_failures",
        "in_flight",
        "key",
        "port",
        "retry_at",
        "successes",
        "tcp_failures",
        "timeouts",
        "trial",
        "weight",
    )

    def __init__(self, host: str, address: str, port: int, weight: int) -> None:
        self.host = host  # as configured: an IP literal or a DNS name
        self.address = address  # the IP connected to
        self.port = port
        self.weight = weight
        self.key = (address, port)  # the upstream connection-pool key
        self.healthy = True
        self.in_flight = 0
        # health-check counters, shared by active and passive checks (as Kong does)
        self.successes = 0
        self.tcp_failures = 0
        self.timeouts = 0
        self.http_failures = 0
        self.down_reason: str | None = None
        self.retry_at = 0.0  # when a passively tripped target gets its next trial
        self.trial = TRIAL_NONE
        # peak-EWMA of request time in seconds (0 = never measured) and when it was last updated
        self.ewma = 0.0
        self.ewma_at = 0.0

    @property
    def identity(self) -> tuple[str, str, int]:
        """What makes two targets the same across reloads: configured host, address, port."""
        return (self.host, self.address, self.port)

    @property
    def label(self) -> str:
        """A stable text name, used for hash-ring points and logs."""
        if self.host == self.address:
            return f"{self.address}:{self.port}"
        return f"{self.host}/{self.address}:{self.port}"

    def set_health(self, healthy: bool, down_reason: str | None = None) -> None:
        """Flip health (a no-op when unchanged); counters restart from zero on every flip."""
        self.successes = self.tcp_failures = self.timeouts = self.http_failures = 0
        self.trial = TRIAL_NONE
        reason = None if healthy else down_reason
        if healthy == self.healthy and reason == self.down_reason:
            return
        self.healthy = healthy
        self.down_reason = reason
        HEALTH_EPOCH.value += 1

    def __repr__(self) -> str:
        state = "healthy" if self.healthy else f"unhealthy({self.down_reason})"
        return f"Target({self.label} w={self.weight} {state} in_flight={self.in_flight})"
