"""Retries (``Service.retry``), per-try and whole-request timeouts, idle timeouts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mesh_http_kit import ScriptedUpstream, cluster, listener, mesh_gateway, route, service

from meshgate import snapshot


def one_service(
    endpoints: list[str], *, retry: snapshot.RetryPolicy | None = None, **fields: Any
) -> Callable[[dict[str, int]], snapshot.Snapshot]:
    def build(ports: dict[str, int]) -> snapshot.Snapshot:
        return snapshot.Snapshot(
            listeners=(listener("proxy"),),
            routes=(route("r", "/", service="s"),),
            services=(service("s", ports[endpoints[0]], retry=retry, **fields),),
            clusters=(cluster("s", [ports[e] for e in endpoints]),),
        )

    return build


def policy(**fields: Any) -> snapshot.RetryPolicy:
    fields.setdefault("num_retries", 2)
    fields.setdefault("backoff_base_ms", 1)
    fields.setdefault("backoff_max_ms", 2)
    return snapshot.RetryPolicy(**fields)


def test_retries_hide_an_endpoint_answering_503() -> None:
    bad, good = ScriptedUpstream("bad", behaviour="503"), ScriptedUpstream("good")
    build = one_service(["bad", "good"], retry=policy(retry_on=("5xx",)))
    with mesh_gateway([bad, good], build) as gw:
        client = gw.client()
        for _ in range(10):
            reply = client.request("GET", "/")
            assert reply.status == 200
            assert reply.json()["name"] == "good"
        small = client.request("POST", "/", body=b"x" * 1000)  # buffered whole: retried
        assert small.status == 200
        assert small.json()["body_len"] == 1000
        client.close()
    assert bad.requests >= 3  # round-robin sent it a share; each was retried on "good"


def test_retries_hide_an_endpoint_that_resets() -> None:
    bad, good = ScriptedUpstream("bad", behaviour="reset"), ScriptedUpstream("good")
    build = one_service(["bad", "good"], retry=policy(retry_on=("reset",)))
    with mesh_gateway([bad, good], build) as gw:
        client = gw.client()
        for _ in range(10):
            assert client.request("POST", "/", body=b"abc").status == 200
        client.close()
    assert bad.requests >= 3


def test_without_matching_retry_on_the_failure_goes_to_the_client() -> None:
    flaky = ScriptedUpstream("flaky", fail_first=1)
    build = one_service(["flaky"], retry=policy(retry_on=("reset",)))  # not 5xx
    with mesh_gateway([flaky], build) as gw:
        reply = gw.once("GET", "/")
    assert reply.status == 503
    assert reply.body == b"down"
    assert flaky.requests == 1


def test_retried_response_is_drained_and_its_connection_reused() -> None:
    flaky = ScriptedUpstream("flaky", fail_first=1)
    build = one_service(["flaky"], retry=policy(retry_on=("gateway-error",)))
    with mesh_gateway([flaky], build) as gw:
        client = gw.client()
        assert client.request("GET", "/").status == 200
        assert client.request("GET", "/").status == 200
        client.close()
    assert flaky.requests == 3
    assert flaky.connections == 1  # the 503's body was read off: the connection stayed clean


def test_streamed_body_is_not_retried() -> None:
    flaky = ScriptedUpstream("flaky", fail_first=1)
    build = one_service(["flaky"], retry=policy(retry_on=("5xx",)))
    with mesh_gateway([flaky], build) as gw:
        client = gw.client()
        big = b"y" * (512 * 1024)  # beyond the buffering limit: streamed upstream
        reply = client.request("POST", "/", body=big)
        assert reply.status == 503
        assert reply.body == b"down"
        assert flaky.requests == 1
        again = client.request("POST", "/", body=big)
        assert again.status == 200
        assert again.json()["body_len"] == len(big)
        client.close()


def test_per_try_timeout_moves_on_to_another_endpoint() -> None:
    slow, good = ScriptedUpstream("slow", behaviour="hang"), ScriptedUpstream("good")
    build = one_service(["slow", "good"], retry=policy(retry_on=("reset",), per_try_timeout_ms=200))
    with mesh_gateway([slow, good], build) as gw:
        client = gw.client()
        started = time.monotonic()
        for _ in range(4):
            reply = client.request("GET", "/")
            assert reply.status == 200
            assert reply.json()["name"] == "good"
        assert time.monotonic() - started < 5  # the hanging endpoint holds for 30 s
        client.close()
    assert slow.requests >= 1


def test_per_try_timeout_without_retries_left_is_504() -> None:
    slow = ScriptedUpstream("slow", behaviour="hang")
    build = one_service(["slow"], retry=policy(num_retries=0, per_try_timeout_ms=150))
    with mesh_gateway([slow], build) as gw:
        started = time.monotonic()
        reply = gw.once("GET", "/")
        assert time.monotonic() - started < 5
    assert reply.status == 504
    assert reply.headers["meshgate-error"] == "upstream-per-try-timeout"


def test_request_timeout_covers_all_tries_and_answers_504() -> None:
    slow = ScriptedUpstream("slow", behaviour="hang")
    build = one_service(
        ["slow"],
        retry=policy(num_retries=5, retry_on=("reset",), per_try_timeout_ms=200),
        request_timeout_ms=500,
    )
    with mesh_gateway([slow], build) as gw:
        started = time.monotonic()
        reply = gw.once("GET", "/")
        elapsed = time.monotonic() - started
    assert reply.status == 504
    assert reply.headers["meshgate-error"] == "upstream-request-timeout"
    assert elapsed < 5
    assert 2 <= slow.requests <= 4  # tries of 200 ms until the 500 ms ran out


def test_idle_timeout_closes_pooled_connections() -> None:
    up = ScriptedUpstream("up")
    build = one_service(["up"], idle_timeout_ms=100)
    with mesh_gateway([up], build) as gw:
        client = gw.client()
        assert client.request("GET", "/").status == 200
        time.sleep(0.6)
        assert up.closed_connections == 1  # the pooled connection was closed while idle
        assert client.request("GET", "/").status == 200
        client.close()
    assert up.connections == 2
