"""The HTTP produce fast path: ``ProduceWaits`` deadlines, the plugins' answers through it
(same as the coroutine path, 503 when the log never acknowledges, errors mapped), and the
byte-written REST answers (the same bytes as ``json.dumps``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from events_http_kit import body_json, build, call, close_logs, embedded, run
from hypothesis import given
from hypothesis import strategies as st

from meshgate.events.api import Acks, ProduceRecord, RecordMetadata
from meshgate.events.errors import BrokerUnavailable, EventLogError
from meshgate.events.http_api import rest_bodies as rest
from meshgate.events.http_api.produce import ProduceWaits
from meshgate.events.http_api.rest_answers import V3Reports, v2_stored
from meshgate.events.http_api.settings import BackendFields
from meshgate.proxy.filters.testing import FakeContext

RAW = {"topic": "orders", "message_format": "raw", "auto_create_topic": True}
BACKEND_DEFAULTS = BackendFields()


class FastLog:
    """A ``ProduceInto`` that keeps the futures it was given (the test settles them)."""

    def __init__(self, accept: bool = True, fail: BaseException | None = None) -> None:
        self.accept = accept
        self.fail = fail
        self.futures: list[asyncio.Future[list[RecordMetadata]]] = []

    def produce_into(
        self,
        future: asyncio.Future[list[RecordMetadata]],
        topic: str,
        records: Sequence[ProduceRecord],
        *,
        partition: int | None = None,
        acks: Acks = "all",
    ) -> bool:
        if self.accept:
            self.futures.append(future)
            if self.fail is not None:
                future.get_loop().call_soon(future.set_exception, self.fail)
        return self.accept


def test_waits_fail_a_pending_produce_at_its_deadline() -> None:
    async def scenario() -> None:
        log, waits = FastLog(), ProduceWaits(0.05)
        stored = waits.start(log, BACKEND_DEFAULTS, "t", [ProduceRecord(value=b"x")], None, "all")
        assert stored is not None
        with pytest.raises(BrokerUnavailable, match=r"within 0\.05s"):
            await asyncio.wait_for(stored, 5)
        assert log.futures[0] is stored  # the log sees it done and will not settle it again
        assert waits.start(FastLog(accept=False), BACKEND_DEFAULTS, "t", [], None, "all") is None

    run(scenario())


def test_waits_keep_no_settled_produces() -> None:
    async def scenario() -> None:
        log, waits = FastLog(), ProduceWaits(30)
        for offset in range(100):
            stored = waits.start(log, BACKEND_DEFAULTS, "t", [ProduceRecord()], None, "all")
            assert stored is not None
            stored.set_result([RecordMetadata("t", 0, offset, 0)])
        assert len(waits._waits) == 1  # only the last, not yet looked at

    run(scenario())


def _upstream(tmp_path: Path, res: dict[str, Any], **extra: Any) -> Any:
    return build("kafka-upstream", embedded(tmp_path, **RAW, **extra), res)


def test_upstream_fast_path_answers_like_the_first_produce(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = _upstream(tmp_path, res)
        first = await call(h, FakeContext("POST", "/o", body=b"one"))  # opens, creates the topic
        second = await call(h, FakeContext("POST", "/o", body=b"two"))  # the fast path
        assert (first.status, second.status) == (200, 200)
        one, two = body_json(first), body_json(second)
        assert two == {**one, "offset": one["offset"] + 1, "timestamp": two["timestamp"]}
        assert second.body == json.dumps(two, separators=(",", ":")).encode()
        fetched = await h.event_log.fetch("orders", 0, 0)
        assert [r.value for r in fetched.records] == [b"one", b"two"]
        await close_logs(res)

    run(scenario())


def test_upstream_fast_path_answers_503_when_never_stored(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = _upstream(tmp_path, res)
        h.fast_log, h.waits = FastLog(), ProduceWaits(0.05)
        result = await call(h, FakeContext("POST", "/o", body=b"x"))
        assert result.status == 503
        assert result.headers.get("retry-after") == ["1"]
        await close_logs(res)

    run(scenario())


@pytest.mark.parametrize("return_error_message", [True, False])
def test_upstream_fast_path_maps_log_errors(tmp_path: Path, return_error_message: bool) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = _upstream(tmp_path, res, error_handling={"return_error_message": return_error_message})
        h.fast_log = FastLog(fail=EventLogError("segment write failed"))
        result = await call(h, FakeContext("POST", "/o", body=b"x"))
        assert result.status == 502
        doc = body_json(result)
        if return_error_message:
            assert "segment write failed" in doc["message"]
        else:
            assert doc == {"message": "Bad Gateway", "error": "could not send message to topic"}
        await close_logs(res)

    run(scenario())


def test_rest_v3_stream_fast_path_reports_each_record(tmp_path: Path) -> None:
    async def scenario() -> None:
        res: dict[str, Any] = {}
        h = build("kafka-rest", embedded(tmp_path, auto_create_topic=True), res)
        one = b'{"value": {"type": "JSON", "data": {"n": 1}}}'
        path = "/v3/clusters/c/topics/t/records"
        first = await call(h, FakeContext("POST", path, body=one))
        streamed = await call(h, FakeContext("POST", path, body=one + b"\n" + one))
        assert (first.status, streamed.status) == (200, 200)
        decoder, text, reports, pos = json.JSONDecoder(), streamed.body.decode(), [], 0
        while pos < len(text):
            doc, pos = decoder.raw_decode(text, pos)
            reports.append(doc)
        assert [r["offset"] for r in reports] == [1, 2]
        assert all(r["value"] == {"type": "JSON", "size": 7} for r in reports)
        await close_logs(res)

    run(scenario())


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@given(
    topic=_text,
    cluster=_text,
    offsets=st.lists(st.integers(0, 2**40), min_size=1, max_size=5),
    stamp=st.integers(0, 2**42),
)
def test_byte_answers_equal_json_dumps(
    topic: str, cluster: str, offsets: list[int], stamp: int
) -> None:
    metas = [RecordMetadata(topic, i % 3, o, stamp + i) for i, o in enumerate(offsets)]
    outcomes = [rest.V2Outcome(metadata=m) for m in metas]
    assert v2_stored(metas) == json.dumps(rest.v2_response(outcomes)).encode()
    body = b'{"value":{"type":"JSON","data":[1]}}{"key":{"type":"STRING","data":"k"}}'
    body += b'{"key":{"type":"BINARY","data":"AAA="},"value":{"type":"STRING","data":"v"}}'
    parsed = rest.parse_v3_records(body)
    reports = V3Reports(cluster)
    for meta, item in zip(metas, parsed, strict=False):
        expected = json.dumps(rest.v3_report(meta, item, cluster)).encode()
        assert reports.report(meta, item) == expected
