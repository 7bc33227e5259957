"""DNS-named targets and state carried over from the previous snapshot's balancer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from balancer_support import FakeClock, FakeRequest, cluster, passive, pick_counts, target

from meshgate.proxy.balancer import Balancer, dns
from meshgate.proxy.balancer.dns import ResolveError, ip_literal


class FakeDns:
    """Stands in for ``dns.resolve``: answers from a table, raises for missing names."""

    def __init__(self, table: dict[str, tuple[str, ...]]) -> None:
        self.table = table
        self.calls = 0

    async def __call__(
        self, name: str, families: Sequence[int] = (), time_limit: float = 0
    ) -> tuple[str, ...]:
        self.calls += 1
        if name not in self.table:
            raise ResolveError(f"no {name}")
        return self.table[name]


def test_ip_literals_are_recognised() -> None:
    assert ip_literal("10.1.2.3") == "10.1.2.3"
    assert ip_literal("[::1]") == "::1"
    assert ip_literal("::1") == "::1"
    assert ip_literal("example.com") is None
    assert ip_literal("localhost") is None


def test_localhost_resolves_for_real_and_is_seeded_before_start() -> None:
    b = Balancer(cluster(("localhost", 8080)))
    assert [(t.host, t.address) for t in b.targets] == [("localhost", "127.0.0.1")]

    async def scenario() -> None:
        await b.start()
        assert [t.key for t in b.targets] == [("127.0.0.1", 8080)]
        assert b.pick(FakeRequest()) is b.targets[0]
        await b.stop()

    asyncio.run(scenario())


def test_each_resolved_address_is_a_target_with_the_endpoint_weight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeDns({"api.internal": ("10.0.0.2", "10.0.0.1")})
    monkeypatch.setattr(dns, "resolve", fake)
    b = Balancer(cluster(("api.internal", 80, 50), ("10.0.0.9", 80, 100)))
    assert [t.address for t in b.targets] == ["10.0.0.9"]  # not resolved yet

    async def scenario() -> None:
        await b.start()
        assert sorted((t.address, t.weight) for t in b.targets) == [
            ("10.0.0.1", 50), ("10.0.0.2", 50), ("10.0.0.9", 100),
        ]  # fmt: skip
        assert pick_counts(b, 8) == {80: 8}
        await b.stop()

    asyncio.run(scenario())


def test_refresh_keeps_last_good_addresses_and_target_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeDns({"api.internal": ("10.0.0.1", "10.0.0.2")})
    monkeypatch.setattr(dns, "resolve", fake)
    b = Balancer(cluster(("api.internal", 80), healthchecks=passive(tcp_failures=1)))

    async def scenario() -> None:
        await b.start()
        first = {t.address: t for t in b.targets}
        b.report(first["10.0.0.1"], "tcp_error")
        del fake.table["api.internal"]
        assert not await b.resolve_names()
        assert {t.address: t for t in b.targets} == first  # last good addresses kept
        fake.table["api.internal"] = ("10.0.0.1", "10.0.0.3")
        assert await b.resolve_names()
        now = {t.address: t for t in b.targets}
        assert sorted(now) == ["10.0.0.1", "10.0.0.3"]
        assert now["10.0.0.1"] is first["10.0.0.1"]
        assert not now["10.0.0.1"].healthy  # its health survived the refresh
        assert pick_counts(b, 4) == {80: 4}
        await b.stop()

    asyncio.run(scenario())


def test_unresolvable_name_reports_dns_error_and_picks_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dns, "resolve", FakeDns({}))
    b = Balancer(cluster(("nowhere.invalid", 80)))

    async def scenario() -> None:
        await b.start()
        assert b.pick(FakeRequest()) is None
        assert b.health_report() == [
            {
                "host": "nowhere.invalid",
                "address": None,
                "port": 80,
                "weight": 100,
                "health": "DNS_ERROR",
            }
        ]
        await b.stop()

    asyncio.run(scenario())


def test_dns_loop_refreshes_periodically(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDns({"api.internal": ("10.0.0.1",)})
    monkeypatch.setattr(dns, "resolve", fake)
    monkeypatch.setattr(Balancer, "dns_refresh_interval", 0.01)
    b = Balancer(cluster(("api.internal", 80)))

    async def scenario() -> None:
        await b.start()
        fake.table["api.internal"] = ("10.0.0.7",)
        for _ in range(500):
            if [t.address for t in b.targets] == ["10.0.0.7"]:
                break
            await asyncio.sleep(0.01)
        assert [t.address for t in b.targets] == ["10.0.0.7"]
        await b.stop()
        calls = fake.calls
        await asyncio.sleep(0.05)
        assert fake.calls == calls  # stopped

    asyncio.run(scenario())


def test_previous_balancer_state_carries_over(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeDns({"api.internal": ("10.0.0.5",)})
    monkeypatch.setattr(dns, "resolve", fake)
    clock = FakeClock()
    checks = passive(tcp_failures=2)
    old = Balancer(
        cluster(("10.0.0.1", 1), ("10.0.0.1", 2), ("api.internal", 3), healthchecks=checks),
        clock=clock,
    )
    asyncio.run(old.start())
    one, two = target(old, 1), target(old, 2)
    old.report(one, "tcp_error")
    old.report(one, "tcp_error")
    old.report(two, "tcp_error")
    old.on_request_start(two)
    old.on_request_end(two, 0.05)
    old.on_request_start(two)

    new = Balancer(
        cluster(
            ("10.0.0.1", 1),
            ("10.0.0.1", 2, 300),
            ("api.internal", 3),
            ("10.0.0.1", 4),
            healthchecks=checks,
            algorithm="latency",
        ),
        previous=old,
        clock=clock,
    )
    assert fake.calls == 1  # resolved addresses were carried, not looked up again
    assert target(new, 1) is one
    assert not one.healthy
    assert target(new, 2) is two
    assert (two.weight, two.tcp_failures, two.in_flight) == (300, 1, 1)
    assert target(new, 3).address == "10.0.0.5"
    assert target(new, 4).healthy
    # the request that started on the old balancer ends on the same target object
    old.on_request_end(two, 0.05)
    assert target(new, 2).in_flight == 0


def test_hash_layout_survives_a_reload() -> None:
    c = cluster(
        ("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3),
        algorithm="consistent-hashing", hash_on="ip",
    )  # fmt: skip
    old = Balancer(c)
    new = Balancer(c, previous=old)
    for i in range(50):
        req = FakeRequest(client_ip=f"198.18.0.{i}")
        assert old.pick(req) is new.pick(req)
