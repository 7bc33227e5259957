"""Health-check counters with Kong's semantics, shared by passive and active checks.

A check result is classified as a success or one of three failures.  A success resets the
failure counters and, on an unhealthy target, counts towards ``successes``; a failure resets
``successes`` and, on a healthy target, counts towards its own threshold.  Reaching a
threshold flips the target (and every flip restarts the counters).  A threshold of 0 disables
that transition.

One deliberate difference from lua-resty-healthcheck: a success resets the failure counters
even when ``successes`` is 0, so failure thresholds count *consecutive* failures.

meshgate's ``recovery_after`` (passive only): a passively tripped target is offered again after
that many seconds for exactly one request (half-open); a success makes it healthy, a failure
trips it for another period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshgate.proxy.balancer.target import (
    DOWN_PASSIVE,
    HEALTH_EPOCH,
    TRIAL_IN_FLIGHT,
    TRIAL_NONE,
    TRIAL_OPEN,
    Target,
)

if TYPE_CHECKING:
    from meshgate import snapshot

SUCCESS = 0
TCP_FAILURE = 1
TIMEOUT = 2
HTTP_FAILURE = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    """One mode's (active or passive) thresholds and status classification."""

    successes: int
    tcp_failures: int
    timeouts: int
    http_failures: int
    healthy_statuses: frozenset[int]
    unhealthy_statuses: frozenset[int]

    @property
    def enabled(self) -> bool:
        return bool(self.successes or self.tcp_failures or self.timeouts or self.http_failures)

    @classmethod
    def passive(cls, cfg: snapshot.PassiveHealthcheck) -> Thresholds:
        return cls(
            successes=cfg.healthy.successes,
            tcp_failures=cfg.unhealthy.tcp_failures,
            timeouts=cfg.unhealthy.timeouts,
            http_failures=cfg.unhealthy.http_failures,
            healthy_statuses=frozenset(cfg.healthy.http_statuses),
            unhealthy_statuses=frozenset(cfg.unhealthy.http_statuses),
        )

    @classmethod
    def active(cls, cfg: snapshot.ActiveHealthcheck) -> Thresholds:
        return cls(
            successes=cfg.healthy.successes,
            tcp_failures=cfg.unhealthy.tcp_failures,
            timeouts=cfg.unhealthy.timeouts,
            http_failures=cfg.unhealthy.http_failures,
            healthy_statuses=frozenset(cfg.healthy.http_statuses),
            unhealthy_statuses=frozenset(cfg.unhealthy.http_statuses),
        )

    def classify_status(self, status: int | None) -> int | None:
        """SUCCESS, HTTP_FAILURE, or None for a status in neither list (ignored)."""
        if status is None or status in self.healthy_statuses:
            return SUCCESS
        if status in self.unhealthy_statuses:
            return HTTP_FAILURE
        return None


def record(t: Target, result: int, th: Thresholds, down_reason: str) -> None:
    """Count one check ``result`` on ``t`` and flip its health when a threshold is reached."""
    if result == SUCCESS:
        if t.healthy:
            t.tcp_failures = t.timeouts = t.http_failures = 0
            return
        t.tcp_failures = t.timeouts = t.http_failures = 0
        t.successes += 1
        if th.successes and t.successes >= th.successes:
            t.set_health(True)
        return
    t.successes = 0
    if not t.healthy:
        return
    if result == TCP_FAILURE:
        t.tcp_failures += 1
        tripped = th.tcp_failures and t.tcp_failures >= th.tcp_failures
    elif result == TIMEOUT:
        t.timeouts += 1
        tripped = th.timeouts and t.timeouts >= th.timeouts
    else:
        t.http_failures += 1
        tripped = th.http_failures and t.http_failures >= th.http_failures
    if tripped:
        t.set_health(False, down_reason)


def open_due_trials(targets: list[Target], now: float) -> float:
    """Make passively tripped targets whose cool-down ended eligible for one pick.

    Returns the earliest ``retry_at`` still pending (``inf`` when none).
    """
    next_at = float("inf")
    for t in targets:
        if t.healthy or t.down_reason != DOWN_PASSIVE or t.trial == TRIAL_OPEN:
            continue
        if t.retry_at <= now:
            t.healthy = True  # down_reason stays: it is a trial, not a recovery
            t.trial = TRIAL_OPEN
            HEALTH_EPOCH.value += 1
        elif t.retry_at < next_at:
            next_at = t.retry_at
    return next_at


def consume_trial(t: Target, now: float, recovery_after: float) -> None:
    """The one trial request of a half-open target was picked: close it until it reports."""
    t.healthy = False
    t.trial = TRIAL_IN_FLIGHT
    t.retry_at = now + recovery_after
    HEALTH_EPOCH.value += 1


def settle_trial(t: Target, result: int, now: float, recovery_after: float) -> None:
    """The trial request reported: success closes the breaker, failure re-opens the cool-down."""
    if result == SUCCESS:
        t.set_health(True)
    else:
        t.trial = TRIAL_NONE
        t.retry_at = now + recovery_after
