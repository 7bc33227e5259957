"""Answers made when the log settles (``ExitFuture``): what settles the future becomes the
request's ``Exit`` (or the error), and the plugins' coroutine-free paths — kafka-upstream's
plain requests, kafka-rest's v3 JSON values — answer exactly as their general paths do, for
stored records and for failed ones; requests that are not plain take the general path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from events_http_kit import body_json, build, call, close_logs, embedded, run
from test_events_http_fastpath import FastLog

from meshgate.events.api import RecordMetadata
from meshgate.events.errors import BrokerUnavailable, EventLogError
from meshgate.events.http_api.produce import ExitFuture, ProduceWaits
from meshgate.proxy.filters.api import Exit
from meshgate.proxy.filters.testing import FakeContext, PhaseResult

RAW = {"topic": "orders", "message_format": "raw", "auto_create_topic": True}


def _exit_for(ctx: Any, state: Any, outcome: Any) -> BaseException:
    if isinstance(outcome, KeyError):
        raise Exit(418, b"raised", [])
    if isinstance(outcome, ValueError):
        raise RuntimeError("a bug in the answer")
    if isinstance(outcome, BaseException):
        return Exit(503, str(outcome).encode(), [])
    return Exit(200, repr((ctx, state, outcome[0].offset)).encode(), [])


async def _answer(future: ExitFuture) -> BaseException:
    try:
        await future
    except BaseException as exc:
        return exc
    raise AssertionError("an ExitFuture never resolves to a value")


def test_exit_future_answers_with_what_exit_for_makes_of_the_outcome() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        stored = ExitFuture(loop, _exit_for, "ctx", "state")
        stored.set_result([RecordMetadata("t", 0, 7, 1)])
        answer = await _answer(stored)
        assert isinstance(answer, Exit)
        assert (answer.status, answer.body) == (200, b"('ctx', 'state', 7)")
        assert stored._answer_ctx is None
        assert stored._answer_state is None
        failed = ExitFuture(loop, _exit_for, None, None)
        failed.set_exception(BrokerUnavailable("down"))
        answer = await _answer(failed)
        assert isinstance(answer, Exit)
        assert answer.status == 503
        raised = ExitFuture(loop, _exit_for, None, None)
        raised.set_exception(KeyError("x"))  # exit_for answering through ctx.exit's raise
        answer = await _answer(raised)
        assert isinstance(answer, Exit)
        assert answer.status == 418
        buggy = ExitFuture(loop, _exit_for, None, None)
        buggy.set_exception(ValueError("x"))
        assert isinstance(await _answer(buggy), RuntimeError)

    run(scenario())


def test_exit_future_settles_once() -> None:
    async def scenario() -> None:
        stored = ExitFuture(asyncio.get_running_loop(), _exit_for, None, None)
        stored.set_result([RecordMetadata("t", 0, 1, 1)])
        with pytest.raises(asyncio.InvalidStateError):
            stored.set_result([RecordMetadata("t", 0, 2, 1)])
        answer = await _answer(stored)
        assert isinstance(answer, Exit)
        assert b"1)" in (answer.body or b"")

    run(scenario())


def _same(plain: PhaseResult, general: PhaseResult) -> None:
    assert (plain.status, plain.headers, plain.body) == (general.status, general.headers,
                                                         general.body)  # fmt: skip


@pytest.mark.parametrize("fail", [None, BrokerUnavailable("down"), EventLogError("disk")])
def test_upstream_plain_path_answers_as_the_general_path(
    tmp_path: Path, fail: BaseException | None
) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h: Any = build("kafka-upstream", embedded(tmp_path, **RAW), res)
        assert h._plain
        await call(h, FakeContext("POST", "/o", body=b"first"))  # opens the log
        results = []
        for plain in (True, False):
            h._plain = plain
            if fail is not None:
                h.fast_log, h.waits = FastLog(fail=fail), ProduceWaits(5)
            headers = [("Content-Type", "text/plain")]
            results.append(await call(h, FakeContext("POST", "/o", headers=headers, body=b"x")))
        if fail is None:  # the second record has the next offset: compare the rest
            plain_doc, general_doc = body_json(results[0]), body_json(results[1])
            assert general_doc["offset"] == plain_doc["offset"] + 1
            assert {**plain_doc, "offset": 0, "timestamp": 0} == {
                **general_doc, "offset": 0, "timestamp": 0}  # fmt: skip
            assert results[0].headers == results[1].headers
            fetched = await h.event_log.fetch("orders", 0, 1)
            assert [(r.value, r.headers) for r in fetched.records] == [
                (b"x", [("content-type", b"text/plain")])] * 2  # fmt: skip
        else:
            _same(*results)
            assert results[0].status in (502, 503)
        await close_logs(res)

    run(scenario())


def test_upstream_cloudevent_is_not_a_plain_request(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h: Any = build("kafka-upstream", embedded(tmp_path, **RAW), res)
        await call(h, FakeContext("POST", "/o", body=b"first"))
        headers = [("ce-specversion", "1.0"), ("ce-id", "1"), ("ce-source", "/s"),
                   ("ce-type", "t"), ("Content-Type", "text/plain")]  # fmt: skip
        result = await call(h, FakeContext("POST", "/o", headers=headers, body=b"event"))
        assert result.status == 200
        fetched = await h.event_log.fetch("orders", 0, 1)
        assert {"ce_specversion", "ce_id", "ce_source", "ce_type", "content-type"} == {
            name for name, _ in fetched.records[0].headers}  # fmt: skip
        h.idempotency = None  # a keyed request takes the general path too: no store here
        missing = await call(h, FakeContext("POST", "/o", headers=headers[:1], body=b"x"))
        assert missing.status == 400  # not stored as a plain record: read as a CloudEvent
        await close_logs(res)

    run(scenario())


_ONE = b'{"value": {"type": "JSON", "data": {"n": 1}}}'
_PATH = "/v3/clusters/c/topics/t/records"


@pytest.mark.parametrize("fail", [None, BrokerUnavailable("down"), EventLogError("disk")])
@pytest.mark.parametrize("count", [1, 3])
def test_rest_v3_fast_path_answers_as_the_general_path(
    tmp_path: Path, fail: BaseException | None, count: int
) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h: Any = build("kafka-rest", embedded(tmp_path, auto_create_topic=True), res)
        assert h._plain_v3
        await call(h, FakeContext("POST", _PATH, body=_ONE))  # opens the log
        body = b"\n".join([_ONE] * count)
        results = []
        for fast in (True, False):
            h._plain_v3 = fast
            if fail is not None:
                h.fast_log, h.waits = FastLog(fail=fail), ProduceWaits(5)
            results.append(await call(h, FakeContext("POST", _PATH, body=body)))
        if fail is None:  # offsets differ by count: compare the rest
            assert results[0].status == results[1].status == 200
            assert results[0].headers == results[1].headers
            assert results[0].body.count(b'"error_code": 200') == count
            assert (results[0].body.replace(b'"offset": ', b"")[:40]
                    == results[1].body.replace(b'"offset": ', b"")[:40])  # fmt: skip
        else:
            _same(*results)
            if count == 1:
                assert results[0].status == (503 if isinstance(fail, BrokerUnavailable) else 502)
                assert body_json(results[0])["error_code"] == results[0].status
            else:
                assert results[0].status == 200
                reports = results[0].body.decode().replace("}{", "}\n{").splitlines()
                assert len(reports) == count
                assert {json.loads(r)["error_code"] for r in reports} == {
                    503 if isinstance(fail, BrokerUnavailable) else 502}  # fmt: skip
        await close_logs(res)

    run(scenario())
