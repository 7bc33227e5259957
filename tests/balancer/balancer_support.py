"""Helpers shared by the balancer tests: cluster builders, a fake request, a fake clock."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from meshgate import snapshot
from meshgate.proxy.balancer import Balancer, Target


def cluster(*endpoints: tuple[str, int, int] | tuple[str, int], **fields: Any) -> snapshot.Cluster:
    """A cluster from (host, port[, weight]) tuples plus any Cluster fields."""
    eps = tuple(
        snapshot.Endpoint(host=e[0], port=e[1], weight=e[2] if len(e) > 2 else 100)
        for e in endpoints
    )
    return snapshot.Cluster(name=fields.pop("name", "c"), endpoints=eps, **fields)


def passive(**unhealthy: Any) -> snapshot.Healthchecks:
    """Healthchecks with passive unhealthy thresholds (and optional successes/recovery_after)."""
    successes = unhealthy.pop("successes", 0)
    recovery_after = unhealthy.pop("recovery_after", 0)
    threshold = unhealthy.pop("threshold", 0)
    return snapshot.Healthchecks(
        passive=snapshot.PassiveHealthcheck(
            healthy=snapshot.PassiveHealthy(successes=successes),
            unhealthy=snapshot.PassiveUnhealthy(**unhealthy),
            recovery_after=recovery_after,
        ),
        threshold=threshold,
    )


@dataclass
class FakeRequest:
    client_ip: str = "192.0.2.1"
    path: str = "/"
    query: str = ""
    consumer_id: str | None = None
    uri_captures: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    set_cookies: list[tuple[str, str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def cookie(self, name: str) -> str | None:
        return self.cookies.get(name)

    def set_response_cookie(self, name: str, value: str, path: str) -> None:
        self.set_cookies.append((name, value, path))


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ports(targets: list[Target | None]) -> list[int]:
    return [t.port if t is not None else 0 for t in targets]


def pick_counts(balancer: Balancer, n: int, req: FakeRequest | None = None) -> Counter[int]:
    """How many of ``n`` picks went to each port (0 = None)."""
    request = req or FakeRequest()
    return Counter(ports([balancer.pick(request) for _ in range(n)]))


def target(balancer: Balancer, port: int) -> Target:
    return next(t for t in balancer.targets if t.port == port)
