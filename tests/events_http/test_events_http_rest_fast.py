"""The typed REST body readers (``rest_fast``) against the general ones (``rest_bodies``): for
any body, a typed reader returns None or exactly the records the general reader gives (and
None whenever the general reader refuses the body), and it does take the usual shapes. The
batched v3 reports equal the per-record ones."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from events_http_kit import build, call, close_logs, embedded, run
from hypothesis import given, settings
from hypothesis import strategies as st
from test_events_http_json_fast import JSON_VALUES

from meshgate.events.api import ProduceRecord, RecordMetadata
from meshgate.events.http_api import rest_bodies as rest
from meshgate.events.http_api import rest_fast
from meshgate.events.http_api.rest_answers import V3Reports
from meshgate.proxy.filters.testing import FakeContext

B64 = st.binary(max_size=8).map(lambda raw: base64.b64encode(raw).decode())


def _general_v3(body: bytes) -> list[ProduceRecord] | None:
    try:
        parsed = rest.parse_v3_records(body)
    except rest.BodyError:
        return None
    return [ProduceRecord(p.record.key, p.record.value, p.record.headers, p.record.timestamp_ms)
            for p in parsed]  # fmt: skip


def _general_v2(body: bytes, fmt: rest.EmbeddedFormat) -> list[ProduceRecord] | None:
    try:
        parsed = rest.parse_v2_produce(body, fmt)
    except rest.BodyError:
        return None
    return [ProduceRecord(r.key, r.value, r.headers, r.timestamp_ms) for r in parsed]


def _same_or_declined(
    fast: list[ProduceRecord] | None, general: list[ProduceRecord] | None
) -> None:
    if fast is not None:
        assert general is not None, "the typed reader took a body the general one refuses"
        assert fast == general
        assert all(type(r) is ProduceRecord for r in fast)


V3_DATA = st.fixed_dictionaries(
    {"type": st.sampled_from(["JSON", "json", "STRING", "BINARY"])},
    optional={"data": JSON_VALUES | B64},
)
V3_DOC = st.one_of(
    st.fixed_dictionaries({"value": st.fixed_dictionaries({"type": st.just("JSON"),
                                                           "data": JSON_VALUES})}),
    st.fixed_dictionaries({}, optional={"value": V3_DATA | st.none(), "key": V3_DATA,
                                        "partition_id": st.integers(-1, 3),
                                        "headers": st.just([{"name": "h", "value": "aA=="}]),
                                        "extra": st.just(1)}),
    JSON_VALUES,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(V3_DOC, max_size=4), st.sampled_from(["\n", "\r\n", " ", "", "\n\n", "\t"]),
       st.booleans())  # fmt: skip
def test_v3_typed_reader_equals_the_general_reader(docs: list[Any], sep: str, pretty: bool) -> None:
    body = sep.join(json.dumps(d, indent=2 if pretty else None, ensure_ascii=False) for d in docs)
    fast = rest_fast.v3_json_values(body.encode())
    _same_or_declined(fast, _general_v3(body.encode()))
    simple = all(isinstance(d, dict) and list(d) == ["value"] and d["value"] is not None
                 and d["value"].get("type") == "JSON" and "data" in d["value"] for d in docs)  # fmt: skip
    if docs and simple and (sep.strip() == "" and (sep or pretty or len(docs) == 1)):
        assert fast is not None, "the usual shape must take the typed path"


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": {"type": "JSON", "data": {"a": 1, "a": 2}}}',  # duplicate keys: the last
        b'{"value": {"type": "JSON", "data": 1}, "value": {"type": "JSON", "data": 2}}',
        b'{"value": {"type": "JSON", "data": 123456789012345678901234567890}}',
        b'{"value": {"type": "JSON", "data": [1.50, 1E5, -0, "\\u00e9\\/"]}}',
        b'{"value": {"type": "JSON", "data": null}}',
        b'{"value": {"type": "JSON"}}',
        b'{"value": {"data": 1}}',
        b'{"value": {"type": "JSON", "data": 1e400}}',
        b'{"value": {"type": "JSON", "data": NaN}}',
        b'{"value": {"type": "JSON", "data": "\\ud800"}}',  # json reads a lone surrogate
        b'{"value": {"type": "JSON", "data": "\xff"}}',
        b'\xef\xbb\xbf{"value": {"type": "JSON", "data": 1}}',
        b'{"value": {"type": "JSON", "data": 1}}\x0c{"value": {"type": "JSON", "data": 2}}',
        b'{"value": {"type": "JSON", "data": 1}}{"value": {"type": "JSON", "data": 2}}',
        b"",
        b"\n \n",
        b"[]",
        b"{}",
        b"null",
        b'{"value": {"type": "JSON", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
    ],
)
def test_v3_edge_bodies(body: bytes) -> None:
    try:
        general = _general_v3(body)
    except (UnicodeEncodeError, RecursionError):  # the general path's own failures
        general = None
    _same_or_declined(rest_fast.v3_json_values(body), general)


def test_v3_typed_reader_declines_more_records_than_allowed() -> None:
    one = b'{"value": {"type": "JSON", "data": 1}}'
    assert rest_fast.v3_json_values(b"\n".join([one] * rest.MAX_RECORDS)) is not None
    assert rest_fast.v3_json_values(b"\n".join([one] * (rest.MAX_RECORDS + 1))) is None


V2_RECORD = st.fixed_dictionaries(
    {},
    optional={"value": JSON_VALUES | B64, "key": JSON_VALUES | B64,
              "partition": st.integers(-1, 2), "headers": st.just([{"key": "h", "value": "aA=="}]),
              "timestamp": st.integers(0, 2**41), "bogus": st.just(1)},
)  # fmt: skip
V2_BODY = st.one_of(
    st.fixed_dictionaries({"records": st.lists(V2_RECORD | JSON_VALUES, max_size=4)},
                          optional={"key_schema": st.none() | st.just("s"),
                                    "value_schema_id": st.none() | st.just(1),
                                    "other": JSON_VALUES}),
    JSON_VALUES,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(V2_BODY, st.sampled_from(["json", "binary", "string"]))
def test_v2_typed_reader_equals_the_general_reader(doc: Any, fmt: rest.EmbeddedFormat) -> None:
    body = json.dumps(doc, ensure_ascii=False).encode()
    fast = rest_fast.v2_records(body, fmt)
    _same_or_declined(fast, _general_v2(body, fmt))
    if (
        isinstance(doc, dict)
        and list(doc) == ["records"]
        and doc["records"]
        and fmt == "json"
        and all(isinstance(r, dict) and set(r) <= {"key", "value"} for r in doc["records"])
    ):
        assert fast is not None, "the usual shape must take the typed path"


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        (b'{"records": [{"value": {"a": 1, "a": 2}}], "records": [{"value": 3}]}', "json"),
        (b'{"records": [{"value": null}, {}, {"key": null, "value": 1}]}', "json"),
        (b'{"records": [{"key": "k", "value": [1.50, -0, 1E5, "\\u00e9"]}]}', "json"),
        (b'{"records": [{"value": "\\ud800"}]}', "string"),
        (b'{"records": [{"value": "not base64!"}]}', "binary"),
        (b'{"records": [{"value": "aGk="}, {"key": "aw==", "value": null}]}', "binary"),
        (b'{"records": [{"value": 5}]}', "string"),
        (b'{"records": []}', "json"),
        (b'{"records": [{"value": 1}], "key_schema": ""}', "json"),
        (b'{"records": [{"value": 1e400}]}', "json"),
        (b'{"records": null}', "json"),
        (b"[]", "json"),
        (b'{"records": [{"value": ' + b"[" * 5000 + b"]" * 5000 + b"}]}", "json"),
    ],
)
def test_v2_edge_bodies(body: bytes, fmt: rest.EmbeddedFormat) -> None:
    try:
        general = _general_v2(body, fmt)
    except (UnicodeEncodeError, RecursionError):  # the general path's own failures
        general = None
    _same_or_declined(rest_fast.v2_records(body, fmt), general)


def test_v2_keys_and_values_are_stored_as_before() -> None:
    body = b'{"records": [{"key": {"k": [1, 2]}, "value": "v"}, {"value": null}]}'
    assert rest_fast.v2_records(body, "json") == [
        ProduceRecord(b'{"k":[1,2]}', b'"v"'),
        ProduceRecord(None, None),
    ]


@given(
    cluster=st.text(max_size=8),
    topic=st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    values=st.lists(JSON_VALUES, min_size=1, max_size=4),
    offsets=st.lists(st.integers(-1, 2**40), min_size=4, max_size=4),
    stamps=st.lists(st.integers(0, 2**42), min_size=4, max_size=4),
)
def test_batched_v3_reports_equal_the_single_ones(
    cluster: str, topic: str, values: list[Any], offsets: list[int], stamps: list[int]
) -> None:
    body = "\n".join(json.dumps({"value": {"type": "JSON", "data": v}}) for v in values).encode()
    records = rest_fast.v3_json_values(body)
    assert records is not None
    metas = [RecordMetadata(topic, i % 2, offsets[i], stamps[i % 2]) for i in range(len(records))]
    reports = V3Reports(cluster + "%d%%")
    expected = b"".join(reports.report(m, p) for m, p in zip(metas, rest.parse_v3_records(body),
                                                             strict=True))  # fmt: skip
    assert reports.json_values(metas, records) == expected


def _reports(body: bytes) -> list[Any]:
    decoder, text, pos, found = json.JSONDecoder(), body.decode(), 0, []
    while pos < len(text):
        doc, pos = decoder.raw_decode(text, pos)
        found.append(doc)
    return found


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/topics/{t}", "application/vnd.kafka.json.v2+json",
         b'{"records": [{"value": {"a": 1}}, {"key": "k", "value": [1]}, {"value": null}]}'),
        ("/topics/{t}/partitions/1", "application/vnd.kafka.binary.v2+json",
         b'{"records": [{"value": "aGk="}, {"key": "aw==", "value": "aGk="}]}'),
        ("/topics/{t}", "application/vnd.kafka.json.v2+json", b'{"records": [{"value": "%s"}]}'),
        ("/v3/clusters/c/topics/{t}/records", "application/json",
         b'{"value": {"type": "JSON", "data": {"n": 1}}}\n{"value": {"type": "JSON", "data": 2}}'),
        ("/v3/clusters/c/topics/{t}/records", "application/json",
         b'{"value": {"type": "JSON", "data": "%s"}}\n{"value": {"type": "JSON", "data": 2}}'),
        ("/v3/clusters/c/topics/{t}/records", "application/json",
         b'{"value": {"type": "JSON", "data": "%s"}}'),
        ("/v3/clusters/c/topics/{t}/records", "application/json",
         b'{"value": {"type": "JSON", "data": []}}'),
    ],
)  # fmt: skip
def test_the_handler_answers_and_stores_the_same_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, content_type: str, body: bytes
) -> None:
    """``%s`` in a body: a value beyond max_record_bytes (413 for the batch or the record)."""
    body = body.replace(b"%s", b"x" * 300)

    async def produce(handler: Any, topic: str) -> tuple[int, Any, list[bytes | None]]:
        ctx = FakeContext("POST", path.format(t=topic), body=body,
                          headers={"content-type": content_type})  # fmt: skip
        result = await call(handler, ctx)
        await call(handler, ctx)  # a second time: the fast path once the topic is known
        answer = json.loads(result.body) if "v3" not in path else _reports(result.body)
        stored = [r.value for p in (0, 1) for r in
                  (await handler.event_log.fetch(topic, p, 0, max_records=50)).records]  # fmt: skip
        return result.status, _without_times(answer), stored

    async def scenario() -> None:
        answers = []
        for name in ("typed", "general"):  # each on a log of its own: the same partitioner state
            res: dict[str, Any] = {}
            handler = build("kafka-rest", embedded(tmp_path / name, max_record_bytes=200), res)
            await handler.event_log.create_topic(name, 2)
            read: list[Any] = []
            for reader in ("v2_records", "v3_json_values"):
                spy = _spy(getattr(rest_fast, reader), read, decline=name == "general")
                monkeypatch.setattr(rest_fast, reader, spy)
            answers.append(await produce(handler, name))
            assert any(read) == (name == "typed")  # the typed readers took the body
            await close_logs(res)
        typed, general = answers
        assert typed == general

    run(scenario())


def _spy(reader: Any, read: list[Any], decline: bool) -> Any:
    """``reader`` that notes each result in ``read``; one that always declines if ``decline``."""

    def spy(*args: Any) -> Any:
        read.append(None if decline else reader(*args))
        return read[-1]

    return spy


def _without_times(answer: Any) -> Any:
    if isinstance(answer, list):
        return [_without_times(a) for a in answer]
    if isinstance(answer, dict):
        return {k: ("t" if k == "timestamp" else "typed|general" if k == "topic_name" else
                    _without_times(v)) for k, v in answer.items()}  # fmt: skip
    return answer
