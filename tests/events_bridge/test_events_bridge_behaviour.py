"""Bridge behaviour beyond the contract: concurrency, cancellation, restarts, processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path
from typing import Any

import pytest
from events_bridge_helpers import produce_from_process, short_socket_dir

from meshgate.events.api import ProduceRecord
from meshgate.events.bridge import (
    EventLogServer,
    RemoteEventLog,
    ServedEventLog,
    open_shared_event_log,
    serve_embedded_log,
)
from meshgate.events.errors import BrokerUnavailable, UnknownTopic
from meshgate.tasks import running


def server_fetch_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in running() if t.get_name() == "eventlog-bridge-fetch"]


def test_long_poll_does_not_hold_up_produces_and_cancel_reaches_the_server(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with short_socket_dir() as sockets:
            served = await serve_embedded_log(tmp_path / "log", sockets / "e.sock")
            client = RemoteEventLog(sockets / "e.sock")
            try:
                await client.create_topic("t", partitions=2)
                waiting = asyncio.ensure_future(client.fetch("t", 1, 0, max_wait=30.0))
                await asyncio.sleep(0.1)
                for _ in range(20):
                    await asyncio.wait_for(
                        client.produce("t", [ProduceRecord(value=b"x")], partition=0), 10
                    )
                assert not waiting.done()
                server_fetches = server_fetch_tasks()
                assert len(server_fetches) == 1, "the long poll runs on the server"
                waiting.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiting
                await asyncio.wait(server_fetches, timeout=10)
                assert server_fetches[0].done(), "the cancel reached the server"
                assert await client.latest("t", 0) == 20
            finally:
                await client.close()
                await served.close()

    asyncio.run(scenario())


def test_client_recovers_when_the_server_restarts(tmp_path: Path) -> None:
    async def scenario() -> None:
        with short_socket_dir() as sockets:
            socket_path = sockets / "e.sock"
            served = await serve_embedded_log(tmp_path / "log", socket_path)
            client = RemoteEventLog(socket_path, connect_timeout=0.3)
            try:
                await client.create_topic("t", partitions=2)
                await client.produce("t", [ProduceRecord(value=b"before")], partition=0)
                member = await client.join_group("g", ["t"])
                assert sorted(member.assignment()) == [("t", 0), ("t", 1)]
                assert [r.value for r in await member.poll(10, 5.0)] == [b"before"]
                await member.commit()
                in_flight = asyncio.ensure_future(client.fetch("t", 0, 1, max_wait=30.0))
                await asyncio.sleep(0.1)
                await served.close()
                with pytest.raises(BrokerUnavailable) as lost:
                    await asyncio.wait_for(in_flight, 10)
                assert lost.value.retry_after > 0
                with pytest.raises(BrokerUnavailable):
                    await client.latest("t", 0)
                with pytest.raises(BrokerUnavailable):
                    await member.commit()
                served = await serve_embedded_log(tmp_path / "log", socket_path)
                await client.produce("t", [ProduceRecord(value=b"after")], partition=0)
                fetched = await client.fetch("t", 0, 0, max_wait=1.0)
                assert [r.value for r in fetched.records] == [b"before", b"after"]
                assert [r.value for r in await member.poll(10, 5.0)] == [b"after"]
                assert sorted(member.assignment()) == [("t", 0), ("t", 1)]
                await member.leave()
            finally:
                await client.close()
                await served.close()

    asyncio.run(scenario())


def test_a_closed_connection_takes_its_group_members_with_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        with short_socket_dir() as sockets:
            served = await serve_embedded_log(tmp_path / "log", sockets / "e.sock")
            first, second = RemoteEventLog(sockets / "e.sock"), RemoteEventLog(sockets / "e.sock")
            try:
                await first.create_topic("t", partitions=2)
                await first.join_group("g", ["t"])
                staying = await second.join_group("g", ["t"])
                assert len(staying.assignment()) == 1
                await first.close()
                deadline = time.monotonic() + 10
                while len(staying.assignment()) < 2 and time.monotonic() < deadline:
                    await staying.poll(10, 0.05)
                assert sorted(staying.assignment()) == [("t", 0), ("t", 1)]
            finally:
                await second.close()
                await served.close()

    asyncio.run(scenario())


def test_unreachable_server_is_broker_unavailable_and_errors_keep_their_class(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        with short_socket_dir() as sockets:
            nowhere = RemoteEventLog(sockets / "missing.sock", connect_timeout=0.1)
            with pytest.raises(BrokerUnavailable) as caught:
                await nowhere.list_topics()
            assert "missing.sock" in caught.value.reason
            await nowhere.close()
            served = await serve_embedded_log(tmp_path / "log", sockets / "e.sock")
            client = RemoteEventLog(sockets / "e.sock")
            try:
                with pytest.raises(UnknownTopic) as unknown:
                    await client.latest("nope", 0)
                assert unknown.value.topic == "nope"
            finally:
                await client.close()
                await served.close()

    asyncio.run(scenario())


def test_a_bad_frame_drops_only_that_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        with short_socket_dir() as sockets:
            served = await serve_embedded_log(tmp_path / "log", sockets / "e.sock")
            client = RemoteEventLog(sockets / "e.sock")
            try:
                await client.create_topic("t")
                reader, writer = await asyncio.open_unix_connection(sockets / "e.sock")
                writer.write(b"\x00\x00\x00\x03abc")
                assert await asyncio.wait_for(reader.read(), 10) == b""
                writer.close()
                assert await client.list_topics() == ["t"]
            finally:
                await client.close()
                await served.close()

    asyncio.run(scenario())


def test_shared_open_serves_once_and_connects_otherwise(tmp_path: Path) -> None:
    async def scenario() -> None:
        with short_socket_dir() as sockets:
            owner = await open_shared_event_log(tmp_path / "log", sockets / "e.sock")
            other = await open_shared_event_log(tmp_path / "log", sockets / "e.sock")
            try:
                assert isinstance(owner, ServedEventLog)
                assert isinstance(other, RemoteEventLog)
                await other.create_topic("t")
                await other.produce("t", [ProduceRecord(value=b"via socket")])
                fetched = await owner.fetch("t", 0, 0)
                assert [r.value for r in fetched.records] == [b"via socket"]
            finally:
                await other.close()
                await owner.close()

    asyncio.run(scenario())


def test_two_processes_produce_concurrently_without_loss_or_duplicate_offsets(
    tmp_path: Path,
) -> None:
    writers, batches = 2, 40

    async def scenario() -> None:
        with short_socket_dir() as sockets:
            socket_path = sockets / "e.sock"
            served = await serve_embedded_log(tmp_path / "log", socket_path)
            try:
                await served.create_topic("shared")
                spawn = multiprocessing.get_context("spawn")
                processes = [
                    spawn.Process(
                        target=produce_from_process,
                        args=(str(socket_path), "shared", writer, batches),
                    )
                    for writer in range(writers)
                ]
                for process in processes:
                    process.start()
                loop = asyncio.get_running_loop()
                for process in processes:
                    await loop.run_in_executor(None, process.join, 40)
                assert [p.exitcode for p in processes] == [0] * writers
                fetched = await served.fetch("shared", 0, 0, max_records=10_000)
                total = writers * batches * 5
                assert [r.offset for r in fetched.records] == list(range(total))
                values = sorted(r.value or b"" for r in fetched.records)
                expected = sorted(
                    f"{w}:{b}:{i}".encode()
                    for w in range(writers)
                    for b in range(batches)
                    for i in range(5)
                )
                assert values == expected
            finally:
                await served.close()

    asyncio.run(scenario())


def test_server_close_without_clients_removes_the_socket(tmp_path: Path) -> None:
    async def scenario() -> None:
        with short_socket_dir() as sockets:
            served = await serve_embedded_log(tmp_path / "log", sockets / "e.sock")
            assert isinstance(served.server, EventLogServer)
            assert (sockets / "e.sock").exists()
            await served.close()
            assert not (sockets / "e.sock").exists()

    asyncio.run(scenario())
