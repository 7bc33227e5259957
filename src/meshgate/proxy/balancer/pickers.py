"""Target selection for round-robin, least-connections and latency (peak-EWMA) balancing.

A picker chooses among healthy targets only; the ``Balancer`` tells it when the target set
changed (``set_targets``, weight-0 targets already removed) and when health changed
(``refresh_health``), so ``pick`` does no filtering work beyond skipping ``exclude``.
When every healthy target is excluded (a retry with nothing new left) the picker returns one
of them anyway: retrying the same target beats failing the request.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Sequence
from functools import reduce
from typing import Protocol

from meshgate.proxy.balancer.target import PickRequest, Target

# Largest round-robin wheel; bigger weight ratios are scaled down to fit (each target keeps >= 1).
MAX_WHEEL = 10_000
# Time constant (seconds) of the latency EWMA: a measurement's influence halves every ~7 s.
LATENCY_DECAY_S = 10.0
# Added to every latency score so unmeasured targets still spread by in-flight count.
_LATENCY_FLOOR_S = 1e-6


class Picker(Protocol):
    """The algorithm part of a balancer."""

    needs_request_data: bool

    def set_targets(self, targets: Sequence[Target]) -> None: ...

    def refresh_health(self) -> None: ...

    def pick(self, req: PickRequest | None, exclude: Collection[Target]) -> Target | None: ...


def build_wheel(targets: Sequence[Target], max_size: int = MAX_WHEEL) -> list[Target]:
    """One full weighted round-robin cycle, each target's turns spread evenly over it.

    Target ``i`` of ``n`` with ``u_i`` units (weight / gcd of weights) sits at positions
    ``(k + phase_i) / u_i`` for ``k < u_i``, ``phase_i = (i + 0.5) / n``; sorting all positions
    interleaves the targets smoothly (the phases keep light targets from bunching up) and
    gives each exactly ``u_i`` turns per cycle.
    """
    if not targets:
        return []
    divisor = reduce(math.gcd, (t.weight for t in targets))
    units = [t.weight // divisor for t in targets]
    total = sum(units)
    if total > max_size:
        units = [max(1, round(u * max_size / total)) for u in units]
    count = len(units)
    positions = [
        ((k + (index + 0.5) / count) / u, index) for index, u in enumerate(units) for k in range(u)
    ]
    positions.sort()
    return [targets[index] for _, index in positions]


class RoundRobin:
    """Smooth weighted round-robin over a precomputed wheel of the healthy targets."""

    needs_request_data = False

    def __init__(self) -> None:
        self._full: list[Target] = []
        self._wheel: list[Target] = []
        self._pos = -1

    def set_targets(self, targets: Sequence[Target]) -> None:
        self._full = build_wheel(targets)
        # A random start, so worker processes do not all begin with the same target.
        self._pos = random.randrange(len(self._full)) if self._full else -1
        self.refresh_health()

    def refresh_health(self) -> None:
        self._wheel = [t for t in self._full if t.healthy]
        if self._wheel:
            self._pos %= len(self._wheel)

    def pick(self, req: PickRequest | None, exclude: Collection[Target]) -> Target | None:
        wheel = self._wheel
        size = len(wheel)
        if not size:
            return None
        pos = self._pos + 1
        if pos >= size:
            pos = 0
        self._pos = pos
        target = wheel[pos]
        if exclude and target in exclude:
            for step in range(1, size):
                candidate = wheel[(pos + step) % size]
                if candidate not in exclude:
                    self._pos = (pos + step) % size
                    return candidate
        return target


class LeastConnections:
    """The healthy target with the most spare capacity: smallest ``(in_flight + 1) / weight``.

    Ties go to the first in a rotating order, i.e. round-robin among equals.
    """

    needs_request_data = False

    def __init__(self) -> None:
        self._targets: list[Target] = []
        self._healthy: list[Target] = []
        self._next = 0

    def set_targets(self, targets: Sequence[Target]) -> None:
        self._targets = list(targets)
        self.refresh_health()

    def refresh_health(self) -> None:
        self._healthy = [t for t in self._targets if t.healthy]
        self._next = 0

    def pick(self, req: PickRequest | None, exclude: Collection[Target]) -> Target | None:
        healthy = self._healthy
        size = len(healthy)
        if not size:
            return None
        start = self._next
        self._next = start + 1 if start + 1 < size else 0
        best: Target | None = None
        best_score = math.inf
        for t in healthy[start:] + healthy[:start] if start else healthy:
            weight = t.weight
            if not weight:  # set to 0 by a newer snapshot while this one drains
                continue
            score = (t.in_flight + 1) / weight
            if score < best_score and not (exclude and t in exclude):
                best, best_score = t, score
        return best if best is not None else healthy[start]


class Latency:
    """Peak-EWMA: the healthy target with the lowest ``decayed_ewma * (in_flight + 1)``.

    Weights are ignored (as in Kong).  The EWMA jumps up to any slower measurement and
    otherwise decays towards new measurements and, between measurements, towards zero, so
    unmeasured or long-unused targets get tried again.
    """

    needs_request_data = False

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._targets: list[Target] = []
        self._healthy: list[Target] = []
        self._next = 0

    def set_targets(self, targets: Sequence[Target]) -> None:
        self._targets = list(targets)
        self.refresh_health()

    def refresh_health(self) -> None:
        self._healthy = [t for t in self._targets if t.healthy]
        self._next = 0

    def pick(self, req: PickRequest | None, exclude: Collection[Target]) -> Target | None:
        healthy = self._healthy
        size = len(healthy)
        if not size:
            return None
        now = self._clock()
        start = self._next
        self._next = start + 1 if start + 1 < size else 0
        best: Target | None = None
        best_score = math.inf
        exp = math.exp
        for t in healthy[start:] + healthy[:start] if start else healthy:
            cost = t.ewma
            if cost:
                cost *= exp((t.ewma_at - now) / LATENCY_DECAY_S)
            score = (cost + _LATENCY_FLOOR_S) * (t.in_flight + 1)
            if score < best_score and not (exclude and t in exclude):
                best, best_score = t, score
        return best if best is not None else healthy[start]


def observe_latency(t: Target, elapsed_s: float, now: float) -> None:
    """Fold one request time into ``t``'s peak-EWMA."""
    keep = math.exp((t.ewma_at - now) / LATENCY_DECAY_S) if t.ewma else 0.0
    current = t.ewma * keep
    t.ewma = elapsed_s if elapsed_s >= current else current + elapsed_s * (1.0 - keep)
    t.ewma_at = now
