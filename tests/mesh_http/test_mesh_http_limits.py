"""Cluster circuit-breaker limits (``Cluster.limits``): over a limit → 503 upstream overflow."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mesh_http_kit import (
    MeshGateway,
    ScriptedUpstream,
    cluster,
    fetch,
    listener,
    mesh_gateway,
    route,
    service,
)

from meshgate import snapshot


def limited(
    limits: snapshot.ConnectionLimits, retry: snapshot.RetryPolicy | None = None
) -> Callable[[dict[str, int]], snapshot.Snapshot]:
    def build(ports: dict[str, int]) -> snapshot.Snapshot:
        return snapshot.Snapshot(
            listeners=(listener("proxy"),),
            routes=(route("r", "/", service="s"), route("free", "/free", service="free")),
            services=(
                service("s", ports["held"], retry=retry),
                service("free", ports["free"]),
            ),
            clusters=(
                cluster("s", [ports["held"]], limits=limits),
                cluster("free", [ports["free"]]),
            ),
        )

    return build


async def _until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 (set in another thread)
            await asyncio.sleep(0.01)


async def held_then_overflow(gw: MeshGateway, held: int) -> None:
    """``held`` requests wait at the upstream; the next one overflows; others still pass."""
    port = gw.ports["proxy"]
    upstream = gw.upstreams["held"]
    waiting = [asyncio.ensure_future(fetch(port, "/")) for _ in range(held)]
    await _until(lambda: upstream.requests == held)
    over = await fetch(port, "/")
    assert over.status == 503
    assert over.headers["meshgate-error"] == "upstream overflow"
    other = await fetch(port, "/free")  # another cluster is not affected
    assert other.status == 200
    gw.open_gate("held")
    for reply in await asyncio.gather(*waiting):
        assert reply.status == 200
    after = await fetch(port, "/")  # room again
    assert after.status == 200


def test_max_requests() -> None:
    upstreams = [ScriptedUpstream("held", behaviour="gate"), ScriptedUpstream("free")]
    build = limited(snapshot.ConnectionLimits(max_requests=2))
    with mesh_gateway(upstreams, build) as gw:
        asyncio.run(held_then_overflow(gw, 2))
    assert upstreams[0].requests == 3


def test_max_connections_without_pending_room() -> None:
    upstreams = [ScriptedUpstream("held", behaviour="gate"), ScriptedUpstream("free")]
    build = limited(snapshot.ConnectionLimits(max_connections=1, max_pending_requests=0))
    with mesh_gateway(upstreams, build) as gw:
        asyncio.run(held_then_overflow(gw, 1))
    assert upstreams[0].connections == 1  # the last request reused the one connection


def test_pending_requests_wait_for_a_connection() -> None:
    upstreams = [ScriptedUpstream("held", behaviour="gate"), ScriptedUpstream("free")]
    build = limited(snapshot.ConnectionLimits(max_connections=1, max_pending_requests=1))

    async def scenario(gw: MeshGateway) -> None:
        port = gw.ports["proxy"]
        upstream = gw.upstreams["held"]
        first = asyncio.ensure_future(fetch(port, "/"))
        await _until(lambda: upstream.requests == 1)
        queued = asyncio.ensure_future(fetch(port, "/"))
        assert gw.live.runtime is not None
        policy = gw.live.runtime.state.config.services["s"].policy
        assert policy is not None
        assert policy.limits is not None
        limits = policy.limits
        await _until(lambda: len(limits.pending) == 1)
        over = await fetch(port, "/")
        assert over.status == 503
        assert over.headers["meshgate-error"] == "upstream overflow"
        assert not queued.done()
        gw.open_gate("held")
        assert (await first).status == 200
        assert (await queued).status == 200

    with mesh_gateway(upstreams, build) as gw:
        asyncio.run(scenario(gw))
    assert upstreams[0].connections == 1
    assert upstreams[0].requests == 2


def test_max_retries_overflow() -> None:
    upstreams = [ScriptedUpstream("held", behaviour="gate", fail_first=1), ScriptedUpstream("free")]
    retry = snapshot.RetryPolicy(
        num_retries=3, retry_on=("5xx",), backoff_base_ms=1, backoff_max_ms=1
    )
    build = limited(snapshot.ConnectionLimits(max_retries=0), retry)
    with mesh_gateway(upstreams, build) as gw:
        reply = gw.once("GET", "/")
    assert reply.status == 503
    assert reply.headers["meshgate-error"] == "upstream overflow"
    assert upstreams[0].requests == 1
