"""Sans-io codecs: SSE, WebSocket frames, Confluent REST bodies, CloudEvents, Kong envelope,
record rendering — parsers fed whole and byte by byte."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshgate.events.api import ConsumedRecord, RecordMetadata
from meshgate.events.http_api import cloudevents as ce
from meshgate.events.http_api import rest_bodies as rest
from meshgate.events.http_api import sse, ws_frames
from meshgate.events.http_api.envelope import EnvelopeError, build_envelope
from meshgate.events.http_api.render import render_record


def _feed(decoder: sse.SseDecoder | ws_frames.FrameDecoder, data: bytes, bytewise: bool) -> list:
    if not bytewise:
        return list(decoder.feed(data))
    out: list = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    return out


# --------------------------------------------------------------------------- SSE


@pytest.mark.parametrize("bytewise", [False, True])
def test_sse_round_trip(bytewise: bool) -> None:
    stream = (
        sse.encode_id("start", retry_ms=500)
        + sse.encode_comment("hello")
        + sse.encode_event("line1\nline2\r\nline3", event_id="c1")
        + sse.encode_event('{"a": "é"}', event_id="c2", event="record")
    )
    decoder = sse.SseDecoder()
    events = _feed(decoder, stream, bytewise)
    assert [(e.data, e.event, e.last_event_id) for e in events] == [
        ("line1\nline2\nline3", "message", "c1"),
        ('{"a": "é"}', "record", "c2"),
    ]
    assert decoder.retry_ms == 500


def test_sse_id_only_block_moves_last_event_id_without_an_event() -> None:
    decoder = sse.SseDecoder()
    assert decoder.feed(sse.encode_id("where")) == []
    assert decoder.last_event_id == "where"


def test_sse_refuses_multiline_ids() -> None:
    with pytest.raises(ValueError, match="one line"):
        sse.encode_event("x", event_id="a\nb")


# --------------------------------------------------------------------------- WebSocket


def test_accept_key_matches_rfc6455_example() -> None:
    assert ws_frames.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    with pytest.raises(ws_frames.ProtocolViolation):
        ws_frames.accept_key("short")


@pytest.mark.parametrize("bytewise", [False, True])
@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_ws_frames_masked_client_messages(bytewise: bool, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    mask = b"\x01\x02\x03\x04"
    data = ws_frames.encode_frame(ws_frames.OP_BINARY, payload, mask=mask)
    if bytewise and size > 200:
        bytewise = False  # keep the byte-by-byte run fast; sizes ≤ 200 cover the headers
    messages = _feed(ws_frames.FrameDecoder(max_message=1 << 20), data, bytewise)
    assert messages == [ws_frames.Message(ws_frames.OP_BINARY, payload)]


def test_ws_fragments_and_control_frames_interleaved() -> None:
    mask = b"abcd"
    data = (
        ws_frames.encode_frame(ws_frames.OP_TEXT, b"hel", fin=False, mask=mask)
        + ws_frames.encode_frame(ws_frames.OP_PING, b"p", mask=mask)
        + ws_frames.encode_frame(ws_frames.OP_CONT, b"lo", mask=mask)
        + ws_frames.encode_frame(ws_frames.OP_CLOSE, b"\x03\xe8bye", mask=mask)
    )
    messages = _feed(ws_frames.FrameDecoder(), data, True)
    assert [(m.opcode, m.payload) for m in messages] == [
        (ws_frames.OP_PING, b"p"),
        (ws_frames.OP_TEXT, b"hello"),
        (ws_frames.OP_CLOSE, b"\x03\xe8bye"),
    ]
    assert messages[2].close_code == 1000


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (ws_frames.encode_frame(ws_frames.OP_TEXT, b"x"), 1002),  # unmasked
        (ws_frames.encode_frame(ws_frames.OP_TEXT, b"\xff", mask=b"abcd"), 1007),
        (ws_frames.encode_frame(ws_frames.OP_CONT, b"x", mask=b"abcd"), 1002),
        (ws_frames.encode_frame(ws_frames.OP_PING, b"x" * 126, mask=b"abcd"), 1002),
        (ws_frames.encode_frame(ws_frames.OP_BINARY, b"x" * 2000, mask=b"abcd"), 1009),
        (bytes([0x83, 0x80]) + b"abcd", 1002),  # unknown opcode 3
    ],
)
def test_ws_violations(data: bytes, code: int) -> None:
    with pytest.raises(ws_frames.ProtocolViolation) as caught:
        ws_frames.FrameDecoder(max_message=1000).feed(data)
    assert caught.value.close_code == code


# --------------------------------------------------------------------------- REST v2 / v3


@pytest.mark.parametrize(
    ("content_type", "fmt"),
    [
        ("application/vnd.kafka.json.v2+json", "json"),
        ("application/vnd.kafka.binary.v2+json; charset=utf-8", "binary"),
        ("application/vnd.kafka.v2+json", "binary"),
        ("application/vnd.kafka.text.v2+json", "string"),
    ],
)
def test_v2_formats(content_type: str, fmt: str) -> None:
    assert rest.v2_format(content_type) == fmt


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/vnd.kafka.avro.v2+json",
        "application/vnd.kafka.x.v2+json",
    ],
)
def test_v2_unsupported_media_types_are_415(content_type: str | None) -> None:
    with pytest.raises(rest.BodyError) as caught:
        rest.v2_format(content_type)
    assert caught.value.status == 415


def test_v2_json_and_binary_bodies() -> None:
    body = json.dumps({"records": [{"key": "k", "value": {"a": [1, 2]}, "partition": 1},
                                   {"value": None}]}).encode()  # fmt: skip
    records = rest.parse_v2_produce(body, "json")
    assert records[0] == rest.RestRecord(b'"k"', b'{"a":[1,2]}', 1)
    assert records[1].value is None
    assert records[1].key is None
    raw = base64.b64encode(b"\x00\xff").decode()
    body = json.dumps({"records": [{"key": raw, "value": raw,
                                    "headers": [{"key": "h", "value": raw}]}]}).encode()  # fmt: skip
    (record,) = rest.parse_v2_produce(body, "binary")
    assert record.key == record.value == b"\x00\xff"
    assert record.headers == (("h", b"\x00\xff"),)


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        (b"not json", "json"),
        (b"{}", "json"),
        (b'{"records": []}', "json"),
        (b'{"records": [1]}', "json"),
        (b'{"records": [{"value": "!!"}]}', "binary"),
        (b'{"records": [{"value": 5}]}', "binary"),
        (b'{"records": [{"value": 1, "partition": -1}]}', "json"),
        (b'{"records": [{"value": 1, "bogus": 1}]}', "json"),
        (b'{"value_schema": "x", "records": [{"value": 1}]}', "json"),
    ],
)
def test_v2_invalid_bodies(body: bytes, fmt: rest.EmbeddedFormat) -> None:
    with pytest.raises(rest.BodyError) as caught:
        rest.parse_v2_produce(body, fmt)
    assert caught.value.status in (400, 422)


def test_v2_response_shape() -> None:
    meta = RecordMetadata("t", 2, 100, 0)
    doc = rest.v2_response(
        [rest.V2Outcome(metadata=meta), rest.V2Outcome(error="down", retriable=True)]
    )
    assert doc == {
        "offsets": [
            {"partition": 2, "offset": 100, "error_code": None, "error": None},
            {"partition": None, "offset": None, "error_code": 2, "error": "down"},
        ],
        "key_schema_id": None,
        "value_schema_id": None,
    }


def test_v3_single_and_streamed_records() -> None:
    one = {"partition_id": 1, "headers": [{"name": "H", "value": "SGVhZGVy"}],
           "key": {"type": "BINARY", "data": "Zm9vYmFy"},
           "value": {"type": "JSON", "data": {"foo": "bar"}},
           "timestamp": "2021-02-05T19:14:42Z"}  # fmt: skip
    (parsed,) = rest.parse_v3_records(json.dumps(one).encode())
    assert parsed.record == rest.RestRecord(
        b"foobar", b'{"foo":"bar"}', 1, (("H", b"Header"),), 1612552482000
    )
    stream = b'{"value": {"type": "STRING", "data": "a"}}\n {"value": {"data": 1}}'
    parsed_many = rest.parse_v3_records(stream)
    assert [p.record.value for p in parsed_many] == [b"a", b"1"]
    report = rest.v3_report(RecordMetadata("t", 0, 7, 1612552482000), parsed_many[0])
    assert report["error_code"] == 200
    assert report["offset"] == 7
    assert report["timestamp"] == "2021-02-05T19:14:42.000Z"
    assert report["value"] == {"type": "STRING", "size": 1}


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"value": {"type": "AVRO", "data": 1}}', b'{"value": {"type": "BINARY", "data": "%%"}}',
     b'{"value": 1}', b'{"nope": 1}', b'{"value": {"type": "STRING", "data": 1}}', b"{"],
)  # fmt: skip
def test_v3_invalid_bodies(body: bytes) -> None:
    with pytest.raises(rest.BodyError):
        rest.parse_v3_records(body)


# --------------------------------------------------------------------------- CloudEvents


def _record(
    headers: list[tuple[str, bytes]], value: bytes | None, key: bytes | None = None
) -> ConsumedRecord:
    return ConsumedRecord("t", 0, 3, 1000, key, value, headers)


def test_cloudevents_binary_http_to_kafka_and_back() -> None:
    headers = {
        "ce-specversion": ["1.0"], "ce-id": ["42"], "ce-source": ["/orders"],
        "ce-type": ["order.created"], "ce-subject": ["caf%C3%A9 %22x%22"],
        "ce-partitionkey": ["cust-7"], "content-type": ["application/json"],
    }  # fmt: skip
    assert ce.mode_of(headers) == "binary"
    event = ce.from_http_binary(headers, b'{"n":1}')
    assert event.key == b"cust-7"
    assert event.value == b'{"n":1}'
    found = dict(event.headers)
    assert found["ce_subject"] == 'café "x"'.encode()
    assert found["content-type"] == b"application/json"
    http_headers, body = ce.to_http(_record(list(event.headers), event.value)) or ([], b"")
    back = dict(http_headers)
    assert back["ce-subject"] == "caf%C3%A9%20%22x%22"
    assert back["Content-Type"] == "application/json"
    assert body == b'{"n":1}'
    structured = ce.to_structured(_record(list(event.headers), event.value))
    assert structured is not None
    assert structured["id"] == "42"
    assert structured["data"] == {"n": 1}
    assert structured["datacontenttype"] == "application/json"


def test_cloudevents_structured() -> None:
    doc = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "partitionkey": "pk",
           "data": {"x": 1}}  # fmt: skip
    body = json.dumps(doc).encode()
    headers = {"content-type": ["application/cloudevents+json; charset=UTF-8"]}
    assert ce.mode_of(headers) == "structured"
    event = ce.from_http_structured(headers["content-type"][0], body)
    assert event.key == b"pk"
    assert event.value == body
    assert ce.to_structured(_record(list(event.headers), body)) == doc
    assert ce.record_mode(_record([], b"x")) is None
    assert ce.to_structured(_record([], b"x")) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"ce-specversion": ["1.0"], "ce-id": ["1"], "ce-source": ["s"]},
        {"ce-specversion": ["0.3"], "ce-id": ["1"], "ce-source": ["s"], "ce-type": ["t"]},
    ],
)
def test_cloudevents_binary_missing_or_wrong_attributes(headers: dict[str, list[str]]) -> None:
    with pytest.raises(ce.CloudEventError):
        ce.from_http_binary(headers, b"")


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"specversion": "1.0", "id": "1", "source": "s"}'])
def test_cloudevents_structured_invalid(body: bytes) -> None:
    with pytest.raises(ce.CloudEventError):
        ce.from_http_structured("application/cloudevents+json", body)


def test_binary_data_becomes_data_base64() -> None:
    record = _record([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("content-type", b"image/png")],
                     b"\x89PNG")  # fmt: skip
    assert ce.to_structured(record) == {
        "specversion": "1.0", "id": "1", "datacontenttype": "image/png",
        "data_base64": base64.b64encode(b"\x89PNG").decode(),
    }  # fmt: skip


# --------------------------------------------------------------------------- envelope + render


def test_kong_envelope() -> None:
    message = json.loads(build_envelope(
        method="POST", path="/kafka", query={"a": ["1"], "b": ["2", "3"]},
        headers={"content-type": ["application/json"], "x": ["y"]}, body=b'{"k": 1}',
        forward_method=True, forward_uri=True, forward_headers=True, forward_body=True,
    ))  # fmt: skip
    assert message == {
        "method": "POST", "uri": "/kafka", "uri_args": {"a": "1", "b": ["2", "3"]},
        "headers": {"content-type": "application/json", "x": "y"},
        "body": base64.b64encode(b'{"k": 1}').decode(), "body_args": {"k": 1},
        "body_base64": True,
    }  # fmt: skip
    text = json.loads(build_envelope(
        method="GET", path="/", query={}, headers={"content-type": ["text/plain"]}, body=b"hi",
        forward_method=False, forward_uri=False, forward_headers=False, forward_body=True,
    ))  # fmt: skip
    assert text == {"body": "hi", "body_args": {}}
    with pytest.raises(EnvelopeError):
        build_envelope(method="POST", path="/", query={},
                       headers={"content-type": ["application/json"]}, body=b"{",
                       forward_method=False, forward_uri=False, forward_headers=False,
                       forward_body=True)  # fmt: skip


def test_render_record_encodings() -> None:
    record = ConsumedRecord("t", 1, 9, 5, b"\xff", b'{"a":1}', [("h", b"v")])
    doc = render_record(record, "json")
    assert doc["key"] == "/w=="
    assert doc["key_encoding"] == "base64"
    assert doc["value"] == {"a": 1}
    assert doc["value_encoding"] == "json"
    assert doc["headers"] == [{"name": "h", "value": "dg=="}]
    not_json = ConsumedRecord("t", 0, 0, 0, b"k", b"plain", [])
    assert render_record(not_json, "json")["value_encoding"] == "base64"
    assert render_record(not_json, "string")["value"] == "plain"
    assert render_record(not_json, "binary")["value"] == "cGxhaW4="
    empty = ConsumedRecord("t", 0, 0, 0, None, None, [])
    assert render_record(empty)["value"] is None
    assert render_record(empty)["key_encoding"] is None


# --------------------------------------------------------------------------- properties


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


@settings(max_examples=200)
@given(
    st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=5
    ),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_sse_any_data_any_split(datas: list[str], cuts: list[int]) -> None:
    stream = b"".join(sse.encode_event(d, event_id=f"id{i}") for i, d in enumerate(datas))
    decoder = sse.SseDecoder()
    events = [e for piece in _split(stream, cuts) for e in decoder.feed(piece)]
    normalized = [d.replace("\r\n", "\n").replace("\r", "\n") for d in datas]
    # an event whose data is empty still dispatches (one empty data line)
    assert [e.data for e in events] == normalized
    assert [e.last_event_id for e in events] == [f"id{i}" for i in range(len(datas))]


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=300), max_size=4), st.lists(st.integers(0, 5000), max_size=8))
def test_ws_any_messages_any_split(payloads: list[bytes], cuts: list[int]) -> None:
    data = b"".join(
        ws_frames.encode_frame(ws_frames.OP_BINARY, p, mask=bytes([i, 7, 9, 11]))
        for i, p in enumerate(payloads)
    )
    decoder = ws_frames.FrameDecoder()
    messages = [m for piece in _split(data, cuts) for m in decoder.feed(piece)]
    assert [m.payload for m in messages] == payloads
