"""Passive health checks: Kong counter semantics, thresholds, the recovery_after half-open."""

from __future__ import annotations

from balancer_support import FakeClock, FakeRequest, cluster, passive, pick_counts, target

from meshgate.proxy.balancer import Balancer

TWO = (("10.0.0.1", 1), ("10.0.0.1", 2))


def test_passive_checks_are_off_by_default() -> None:
    b = Balancer(cluster(*TWO))
    one = target(b, 1)
    for _ in range(100):
        b.report(one, "tcp_error")
        b.report(one, "http", 500)
    assert one.healthy
    assert b.health_report()[0]["health"] == "HEALTHCHECKS_OFF"


def test_tcp_failures_trip_and_a_success_resets_the_count() -> None:
    b = Balancer(cluster(*TWO, healthchecks=passive(tcp_failures=3)))
    one = target(b, 1)
    b.report(one, "tcp_error")
    b.report(one, "tcp_error")
    b.report(one, "ok", 200)  # not consecutive any more
    b.report(one, "tcp_error")
    b.report(one, "tcp_error")
    assert one.healthy
    assert one.tcp_failures == 2
    b.report(one, "tcp_error")
    assert not one.healthy
    assert one.down_reason == "passive"
    assert pick_counts(b, 10) == {2: 10}
    assert {r["port"]: r["health"] for r in b.health_report()} == {1: "UNHEALTHY", 2: "HEALTHY"}


def test_timeouts_and_http_failures_have_their_own_thresholds() -> None:
    b = Balancer(cluster(*TWO, healthchecks=passive(timeouts=2, http_failures=3)))
    one, two = target(b, 1), target(b, 2)
    b.report(one, "timeout")
    b.report(one, "http", 500)
    b.report(one, "http", 503)
    assert one.healthy  # 1 timeout, 2 http failures: neither threshold reached
    b.report(one, "timeout")
    assert not one.healthy
    b.report(two, "http", 404)  # in neither status list: ignored
    b.report(two, "http", 429)
    b.report(two, "http", 500)
    assert two.healthy
    b.report(two, "http", 503)
    assert not two.healthy
    assert b.pick(FakeRequest()) is None


def test_successes_bring_a_target_back_and_failures_reset_them() -> None:
    b = Balancer(cluster(*TWO, healthchecks=passive(http_failures=1, successes=3)))
    one = target(b, 1)
    b.report(one, "http", 500)
    assert not one.healthy
    b.report(one, "ok", 200)
    b.report(one, "ok", 204)
    b.report(one, "timeout")  # resets successes
    b.report(one, "ok", 200)
    b.report(one, "ok", 200)
    assert not one.healthy
    b.report(one, "ok", 301)
    assert one.healthy
    assert (one.successes, one.http_failures) == (0, 0)  # counters restart on a flip


def test_operator_override_and_set_health_matching() -> None:
    b = Balancer(cluster(("10.0.0.1", 1), ("10.0.0.2", 1), healthchecks=passive(tcp_failures=1)))
    assert b.set_health("10.0.0.9", 1, False) == 0
    assert b.set_health("10.0.0.2", 1, False) == 1
    assert target(b, 1).healthy
    assert [t.address for t in b.targets if not t.healthy] == ["10.0.0.2"]
    b.set_health("10.0.0.2", 1, True)
    assert all(t.healthy for t in b.targets)


def test_threshold_reacts_to_passive_trips() -> None:
    b = Balancer(cluster(*TWO, healthchecks=passive(tcp_failures=1, threshold=60)))
    assert b.pick(FakeRequest()) is not None
    b.report(target(b, 1), "tcp_error")  # 50 % healthy < 60 %
    assert b.pick(FakeRequest()) is None


def test_without_recovery_after_a_tripped_target_stays_down() -> None:
    clock = FakeClock()
    b = Balancer(cluster(*TWO, healthchecks=passive(tcp_failures=1)), clock=clock)
    b.report(target(b, 1), "tcp_error")
    clock.now += 10_000
    assert pick_counts(b, 20) == {2: 20}


def test_recovery_after_gives_one_trial_then_heals_on_success() -> None:
    clock = FakeClock()
    checks = passive(tcp_failures=1, recovery_after=30)
    b = Balancer(cluster(*TWO, healthchecks=checks), clock=clock)
    one = target(b, 1)
    b.report(one, "tcp_error")
    clock.now += 29
    assert pick_counts(b, 10) == {2: 10}
    clock.now += 1
    counts = pick_counts(b, 10)
    assert counts == {1: 1, 2: 9}  # exactly one trial request
    b.report(one, "ok", 200)
    assert one.healthy
    assert pick_counts(b, 10) == {1: 5, 2: 5}


def test_recovery_after_trial_failure_trips_again_for_another_period() -> None:
    clock = FakeClock()
    checks = passive(http_failures=1, recovery_after=5)
    b = Balancer(cluster(*TWO, healthchecks=checks), clock=clock)
    one = target(b, 1)
    b.report(one, "http", 500)
    clock.now += 5
    assert pick_counts(b, 4)[1] == 1
    b.report(one, "timeout")
    assert not one.healthy
    clock.now += 4.9
    assert pick_counts(b, 10) == {2: 10}
    clock.now += 0.1
    assert pick_counts(b, 10) == {1: 1, 2: 9}


def test_recovery_after_lost_trial_is_offered_again_after_another_period() -> None:
    clock = FakeClock()
    b = Balancer(cluster(*TWO, healthchecks=passive(tcp_failures=1, recovery_after=5)), clock=clock)
    b.report(target(b, 1), "tcp_error")
    clock.now += 5
    assert pick_counts(b, 4)[1] == 1  # the trial's report never arrives (client went away)
    clock.now += 5
    assert pick_counts(b, 4)[1] == 1


def test_recovery_trial_when_every_target_is_down() -> None:
    clock = FakeClock()
    b = Balancer(cluster(*TWO, healthchecks=passive(tcp_failures=1, recovery_after=1)), clock=clock)
    for t in b.targets:
        b.report(t, "tcp_error")
    assert b.pick(FakeRequest()) is None
    clock.now += 1
    trials = [b.pick(FakeRequest()) for _ in range(3)]
    assert sorted(t.port for t in trials if t is not None) == [1, 2]
    assert trials[2] is None


def test_operator_down_is_not_retried_by_recovery_after() -> None:
    clock = FakeClock()
    b = Balancer(cluster(*TWO, healthchecks=passive(tcp_failures=1, recovery_after=1)), clock=clock)
    b.set_health("10.0.0.1", 1, False)
    clock.now += 100
    assert pick_counts(b, 10) == {2: 10}


def test_passive_tcp_type_ignores_statuses() -> None:
    checks = passive(http_failures=1, tcp_failures=1)
    tcp_checks = checks.model_copy(
        update={"passive": checks.passive.model_copy(update={"type": "tcp"})}
    )
    b = Balancer(cluster(*TWO, healthchecks=tcp_checks))
    one = target(b, 1)
    b.report(one, "http", 500)
    assert one.healthy
    b.report(one, "tcp_error")
    assert not one.healthy
