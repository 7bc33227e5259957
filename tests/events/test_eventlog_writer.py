"""The embedded log's serial writer: calls and append rounds in submission order, one thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from meshgate.events.embedded.writer import SerialWriter


def test_appends_between_calls_commit_as_rounds_in_order() -> None:
    writer = SerialWriter("test-writer")
    seen: list[Any] = []
    gate = threading.Event()
    writer.commit = lambda batch: seen.append(("round", list(batch)))
    blocker = writer.submit(gate.wait, 5)  # holds the thread while the queue fills
    for item in ("a", "b"):
        writer.append(item)
    writer.submit(seen.append, "call")
    writer.append("c")
    gate.set()
    assert blocker.result(5) is True
    writer.shutdown()
    assert seen == [("round", ["a", "b"]), "call", ("round", ["c"])]


def test_every_piece_of_work_runs_on_the_one_named_thread() -> None:
    writer = SerialWriter("eventlog-writer-test")
    names: list[str] = []
    writer.commit = lambda _batch: names.append(threading.current_thread().name)
    writer.append("x")
    assert writer.submit(lambda: threading.current_thread().name).result(5) == names[0]
    writer.shutdown()
    assert names == ["eventlog-writer-test"]


def test_a_failing_call_fails_its_future_and_the_writer_carries_on() -> None:
    writer = SerialWriter("test-writer")

    def boom() -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        writer.submit(boom).result(5)
    assert writer.submit(lambda: 42).result(5) == 42
    writer.shutdown()


def test_shutdown_runs_what_was_queued_then_refuses_new_work() -> None:
    writer = SerialWriter("test-writer")
    done: list[Any] = []
    gate = threading.Event()
    writer.commit = done.append
    writer.submit(gate.wait, 5)
    queued = writer.submit(done.append, "queued call")
    writer.append("queued append")
    threading.Timer(0.05, gate.set).start()
    writer.shutdown(wait=True)
    assert queued.done()
    assert done == ["queued call", ["queued append"]]
    with pytest.raises(RuntimeError, match="shutdown"):
        writer.submit(print)
    with pytest.raises(RuntimeError, match="shutdown"):
        writer.append("late")


def test_shutdown_with_cancel_futures_cancels_calls_not_started() -> None:
    writer = SerialWriter("test-writer")
    gate = threading.Event()
    started = writer.submit(gate.wait, 5)
    waiting = writer.submit(lambda: "never")
    threading.Timer(0.05, gate.set).start()
    writer.shutdown(wait=True, cancel_futures=True)
    assert started.result(0) is True
    assert waiting.cancelled()
