"""The bridge's sans-io framing and its JSON shapes of records, results and errors."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshgate.events import errors
from meshgate.events.api import ConsumedRecord, FetchResult, ProduceRecord, TopicInfo
from meshgate.events.bridge import wire
from meshgate.events.bridge.codec import FrameDecoder, FrameError, encode_frame

MESSAGES: list[dict[str, Any]] = [
    {"id": 1, "op": "produce", "args": {"topic": "t", "records": [["AA==", None, [], None]]}},
    {"id": 2, "result": [["t", 0, 7, 1700000000000]]},
    {"id": 3, "error": {"type": "UnknownTopic", "message": "é", "fields": {"topic": "ü"}}},
    {},
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=8,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
optional_bytes = st.none() | st.binary(max_size=64)
headers = st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=16)), max_size=3)


def test_whole_stream_decodes_every_message_in_order() -> None:
    stream = b"".join(encode_frame(m) for m in MESSAGES)
    decoder = FrameDecoder()
    assert decoder.feed(stream) == MESSAGES
    assert decoder.pending_bytes == 0


def test_byte_by_byte_stream_decodes_the_same() -> None:
    stream = b"".join(encode_frame(m) for m in MESSAGES)
    decoder = FrameDecoder()
    decoded = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])]
    assert decoded == MESSAGES


def test_cut_short_stream_waits_for_the_rest() -> None:
    frame = encode_frame(MESSAGES[0])
    for cut in range(len(frame)):
        decoder = FrameDecoder()
        assert decoder.feed(frame[:cut]) == []
        assert decoder.pending_bytes == cut
        assert decoder.feed(frame[cut:]) == [MESSAGES[0]]


def test_oversized_and_malformed_frames_are_refused() -> None:
    with pytest.raises(FrameError):
        FrameDecoder(max_frame=10).feed(encode_frame({"a": "x" * 20}))
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\x00\x00\x00\x03abc")
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\x00\x00\x00\x02[]")
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\x00\x00\x00\x01\xff")


@settings(max_examples=60, deadline=None)
@given(st.lists(json_objects, max_size=4), st.integers(min_value=1, max_value=7))
def test_any_messages_round_trip_in_any_chunking(messages: list[Any], chunk: int) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    decoded = [m for i in range(0, len(stream), chunk) for m in decoder.feed(stream[i : i + chunk])]
    assert decoded == messages


@given(optional_bytes, optional_bytes, headers, st.none() | st.integers(0, 2**62))
def test_produce_records_round_trip(
    key: bytes | None, value: bytes | None, hdrs: list[tuple[str, bytes]], stamp: int | None
) -> None:
    record = ProduceRecord(key, value, hdrs, stamp)
    [decoded] = FrameDecoder().feed(encode_frame({"r": wire.produce_record_out(record)}))
    assert wire.produce_record_in(decoded["r"]) == ProduceRecord(key, value, list(hdrs), stamp)


@given(optional_bytes, optional_bytes, headers, st.integers(0, 2**40), st.integers(0, 2**62))
def test_fetch_results_round_trip(
    key: bytes | None, value: bytes | None, hdrs: list[tuple[str, bytes]], offset: int, ts: int
) -> None:
    result = FetchResult([ConsumedRecord("t", 3, offset, ts, key, value, hdrs)], offset + 1, 0)
    [decoded] = FrameDecoder().feed(encode_frame({"r": wire.fetch_result_out(result)}))
    assert wire.fetch_result_in(decoded["r"]) == result


def test_topic_info_and_offsets_round_trip() -> None:
    info = TopicInfo("orders", 3, {"retention.ms": "1000"})
    assert wire.topic_info_in(wire.topic_info_out(info)) == info
    offsets = {("a", 0): 5, ("b", 2): 9}
    assert wire.offsets_in(wire.offsets_out(offsets)) == offsets


@pytest.mark.parametrize(
    "error",
    [
        errors.UnknownTopic("orders"),
        errors.TopicAlreadyExists("orders"),
        errors.UnknownPartition("orders", 4),
        errors.RecordTooLarge(2048, 1024),
        errors.OffsetOutOfRange("orders", 1, 12, 10),
        errors.BrokerUnavailable("disk full", retry_after=2.5),
        errors.InvalidTopic("bad name"),
        errors.LogLocked("held by pid 1"),
        errors.EventLogError("plain"),
    ],
)
def test_errors_come_back_as_the_same_class_with_their_fields(
    error: errors.EventLogError,
) -> None:
    [decoded] = FrameDecoder().feed(encode_frame({"e": wire.error_out(error)}))
    rebuilt = wire.error_in(decoded["e"])
    assert type(rebuilt) is type(error)
    assert vars(rebuilt) == vars(error)
    assert str(rebuilt) == str(error)


def test_foreign_and_unknown_errors_become_event_log_errors() -> None:
    rebuilt = wire.error_in(wire.error_out(ZeroDivisionError("boom")))
    assert type(rebuilt) is errors.EventLogError
    assert "ZeroDivisionError: boom" in str(rebuilt)
    assert type(wire.error_in({"type": "SystemExit", "message": "x"})) is errors.EventLogError
    broken = wire.error_in({"type": "RecordTooLarge", "message": "m", "fields": {}})
    assert type(broken) is errors.EventLogError
