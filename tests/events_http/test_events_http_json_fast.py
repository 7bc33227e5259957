"""The produce path's JSON (msgspec with the standard library behind it): same documents and
errors as ``json`` alone, the same bytes stored (floats: the same numbers); NaN/Infinity and
out-of-range numbers refused on both paths."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshgate.events.http_api import json_fast
from meshgate.events.http_api.rest_bodies import BodyError, parse_v2_produce, parse_v3_records

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def stdlib_compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(has_float(v) for v in value.values())
    return isinstance(value, list) and any(has_float(v) for v in value)


def assert_stored_as_json_would(stored: bytes, value: Any) -> None:
    assert json.loads(stored) == value
    if not has_float(value):  # floats: shortest form, 1e20 where json writes 1e+20
        assert stored == stdlib_compact(value)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_loads_and_compact_agree_with_the_standard_library(value: Any) -> None:
    text = json.dumps(value, ensure_ascii=False)
    parsed = json_fast.loads(text.encode())
    assert parsed == json.loads(text)
    assert_stored_as_json_would(json_fast.compact(parsed), json.loads(text))


@pytest.mark.parametrize(
    "doc",
    [
        b'{"big": 123456789012345678901234567890}',  # beyond 64 bits: orjson refuses
        b'{"n": -18446744073709551617}',
        b'["lone \\ud800 surrogate"]',
    ],
)
def test_what_orjson_refuses_is_read_as_the_standard_library_reads_it(doc: bytes) -> None:
    parsed = json_fast.loads(doc)
    assert parsed == json.loads(doc)
    if "surrogate" not in doc.decode():
        assert json_fast.compact(parsed) == stdlib_compact(json.loads(doc))
    else:  # as before msgspec: json's text, which UTF-8 cannot hold
        with pytest.raises(UnicodeEncodeError):
            json_fast.compact(parsed)


@pytest.mark.parametrize(
    "doc",
    [b"[NaN]", b'{"x": Infinity}', b"-Infinity", b"{", b"", b"[1e400]", b'["\\ud800", 1e999]'],
)
def test_not_json_is_refused(doc: bytes) -> None:
    with pytest.raises(ValueError, match=r"JSON|Expecting|range"):
        json_fast.loads(doc)


def test_v2_stores_the_compact_value_and_refuses_nan() -> None:
    body = b'{"records": [{"value": {"a": [1, 2.5, "\xc3\xa9"], "b": null}}, {"value": 7}]}'
    records = parse_v2_produce(body, "json")
    assert [r.value for r in records] == [b'{"a":[1,2.5,"\xc3\xa9"],"b":null}', b"7"]
    with pytest.raises(BodyError, match="not valid JSON"):
        parse_v2_produce(b'{"records": [{"value": NaN}]}', "json")


V3_DOCS = st.lists(
    st.fixed_dictionaries({"value": st.fixed_dictionaries(
        {"type": st.just("JSON"), "data": JSON_VALUES})}),
    min_size=1, max_size=5,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(V3_DOCS, st.sampled_from(["\n", "\r\n", " ", "\n\n", "  \n"]))
def test_v3_streams_read_the_same_one_per_line_or_not(docs: list[Any], sep: str) -> None:
    body = sep.join(json.dumps(d, ensure_ascii=False) for d in docs).encode()
    pretty = "\n".join(json.dumps(d, indent=2, ensure_ascii=False) for d in docs).encode()
    for parsed in (parse_v3_records(body), parse_v3_records(pretty)):  # pretty: general reader
        assert len(parsed) == len(docs)
        for record, doc in zip(parsed, docs, strict=True):
            assert record.record.value is not None
            assert_stored_as_json_would(record.record.value, doc["value"]["data"])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"value": {"type": "JSON", "data": 1}}\n{"value": ', "not valid JSON"),
        (b'{"value": {"type": "JSON", "data": NaN}}', "not valid JSON"),
        (b"\n \n", "empty body"),
        (b'{"value": {"type": "JSON", "data": 1}}\n[1]', "must be a JSON object"),
    ],
)
def test_v3_bad_streams_get_the_general_readers_errors(body: bytes, message: str) -> None:
    with pytest.raises(BodyError, match=message):
        parse_v3_records(body)
