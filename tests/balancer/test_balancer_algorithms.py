"""Round-robin, least-connections and latency: distribution, health skipping, exclusion."""

from __future__ import annotations

import timeit

from balancer_support import FakeClock, FakeRequest, cluster, passive, pick_counts, ports, target

from meshgate.proxy.balancer import Balancer, Target
from meshgate.proxy.balancer.pickers import build_wheel


def test_round_robin_is_exact_by_weight_over_a_full_cycle() -> None:
    b = Balancer(cluster(("10.0.0.1", 1, 300), ("10.0.0.1", 2, 200), ("10.0.0.1", 3, 100)))
    counts = pick_counts(b, 6 * 50)  # the wheel is 3+2+1 = 6 long
    assert counts == {1: 150, 2: 100, 3: 50}


def test_round_robin_interleaves_instead_of_bursting() -> None:
    b = Balancer(cluster(("10.0.0.1", 1, 500), ("10.0.0.1", 2, 100), ("10.0.0.1", 3, 100)))
    seq = "".join(str(p) for p in ports([b.pick(FakeRequest()) for _ in range(7 * 3)]))
    assert max(len(run) for run in seq.replace("3", "2").split("2")) <= 3
    assert "23" not in seq
    assert "32" not in seq


def test_wheel_scales_huge_weight_ratios_but_keeps_every_target() -> None:
    targets = [Target("a", "10.0.0.1", 1, 65535), Target("b", "10.0.0.1", 2, 1)]
    wheel = build_wheel(targets, max_size=1000)
    assert len(wheel) <= 1001
    assert wheel.count(targets[1]) == 1


def test_weight_zero_targets_are_never_picked() -> None:
    b = Balancer(cluster(("10.0.0.1", 1, 100), ("10.0.0.1", 2, 0)))
    assert pick_counts(b, 50) == {1: 50}


def test_unhealthy_targets_are_skipped_and_come_back() -> None:
    b = Balancer(cluster(("10.0.0.1", 1), ("10.0.0.1", 2), ("10.0.0.1", 3)))
    assert b.set_health("10.0.0.1", 2, False) == 1
    assert pick_counts(b, 30) == {1: 15, 3: 15}
    b.set_health("10.0.0.1", 2, True)
    assert pick_counts(b, 30) == {1: 10, 2: 10, 3: 10}


def test_no_healthy_target_gives_none() -> None:
    b = Balancer(cluster(("10.0.0.1", 1), ("10.0.0.1", 2)))
    b.set_health("10.0.0.1", 1, False)
    b.set_health("10.0.0.1", 2, False)
    assert b.pick(FakeRequest()) is None
    assert Balancer(cluster()).pick(FakeRequest()) is None


def test_threshold_of_healthy_weight_gives_none_below_it() -> None:
    c = cluster(
        ("10.0.0.1", 1, 100), ("10.0.0.1", 2, 100), ("10.0.0.1", 3, 200),
        healthchecks=passive(threshold=50),
    )  # fmt: skip
    b = Balancer(c)
    b.set_health("10.0.0.1", 1, False)  # 300/400 = 75 % healthy
    assert b.pick(FakeRequest()) is not None
    b.set_health("10.0.0.1", 2, False)  # 200/400 = 50 %: still met
    assert b.pick(FakeRequest()) is not None
    b.set_health("10.0.0.1", 3, False)
    b.set_health("10.0.0.1", 1, True)  # 100/400 = 25 %
    assert b.pick(FakeRequest()) is None


def test_exclude_picks_another_target_when_possible() -> None:
    b = Balancer(cluster(("10.0.0.1", 1), ("10.0.0.1", 2), ("10.0.0.1", 3)))
    first = b.pick(FakeRequest())
    assert first is not None
    second = b.pick(FakeRequest(), exclude=[first])
    assert second is not None
    assert second is not first
    third = b.pick(FakeRequest(), exclude=[first, second])
    assert third not in (first, second, None)
    # everything tried: retry one of them rather than fail
    assert b.pick(FakeRequest(), exclude=[first, second, third]) is not None


def test_least_connections_prefers_spare_capacity_by_weight() -> None:
    b = Balancer(cluster(("10.0.0.1", 1, 100), ("10.0.0.1", 2, 200), algorithm="least-connections"))
    assert not b.needs_request_data
    picked = []
    for _ in range(6):
        t = b.pick(FakeRequest())
        assert t is not None
        b.on_request_start(t)
        picked.append(t.port)
    # capacity 1:2 -> with 6 in flight, 2 on port 1 and 4 on port 2
    assert sorted(picked) == [1, 1, 2, 2, 2, 2]
    one = target(b, 1)
    b.on_request_end(one, 0.01)
    b.on_request_end(one, 0.01)
    assert one.in_flight == 0
    nxt = b.pick(FakeRequest())
    assert nxt is one


def test_least_connections_breaks_ties_round_robin() -> None:
    b = Balancer(cluster(("10.0.0.1", 1), ("10.0.0.1", 2), algorithm="least-connections"))
    assert pick_counts(b, 10) == {1: 5, 2: 5}


def test_latency_tries_unmeasured_then_prefers_the_faster() -> None:
    clock = FakeClock()
    b = Balancer(
        cluster(("10.0.0.1", 1, 100), ("10.0.0.1", 2, 1), algorithm="latency"), clock=clock
    )
    seen = set()
    for _ in range(2):
        t = b.pick(FakeRequest())
        assert t is not None
        seen.add(t.port)
        b.on_request_start(t)
        b.on_request_end(t, 0.200 if t.port == 1 else 0.010)
        clock.now += 0.1
    assert seen == {1, 2}  # both unmeasured targets were tried
    # weights are ignored: the fast port-2 target (weight 1) takes the traffic
    assert pick_counts(b, 20) == {2: 20}


def test_latency_penalises_in_flight_and_decays_towards_retrying() -> None:
    clock = FakeClock()
    b = Balancer(cluster(("10.0.0.1", 1), ("10.0.0.1", 2), algorithm="latency"), clock=clock)
    fast, slow = target(b, 1), target(b, 2)
    b.on_request_end(fast, 0.010)
    b.on_request_end(slow, 0.030)
    for _ in range(2):
        b.on_request_start(fast)  # 0.010 * 3 > 0.030 * 1
    assert b.pick(FakeRequest()) is slow
    b.on_request_end(fast, 0.010)
    b.on_request_end(fast, 0.010)
    assert b.pick(FakeRequest()) is fast
    # a peak is taken at once ...
    b.on_request_end(fast, 1.0)
    assert b.pick(FakeRequest()) is slow
    # ... and the slow one's estimate decays when unused, so it is tried again later
    clock.now += 60
    b.on_request_end(slow, 0.030)
    assert b.pick(FakeRequest()) is fast


def test_round_robin_pick_is_cheap() -> None:
    b = Balancer(cluster(*[("10.0.0.1", p) for p in range(1, 9)]))
    req = FakeRequest()
    per_pick = min(timeit.repeat(lambda: b.pick(req), number=20000, repeat=3)) / 20000
    assert per_pick < 20e-6  # ~1 µs on a normal machine; generous for slow CI
