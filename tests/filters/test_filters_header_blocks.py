"""Header blocks (fixed names set together, recorded as one change) give exactly what the
same changes made one header at a time give: on the lines (``HeaderBlock.apply``), on the
upstream request head (``authenticate``), and on the response head both without a response
table (``apply_response_changes``) and with one (``start_response``)."""

from __future__ import annotations

import pytest
from filters_kit import change_request_headers, change_response_headers
from hypothesis import given, settings
from hypothesis import strategies as st

from meshgate.proxy.filters.api import Phase, PhaseError
from meshgate.proxy.filters.flow import request_head
from meshgate.proxy.filters.headers import HeaderBlock, HeaderTable, apply_ops, check_header
from meshgate.proxy.filters.testing import FakeContext
from meshgate.snapshot import Consumer

_BLOCK = HeaderBlock(["X-Limit", "x-rest", "RateLimit-Reset"])
_NAMES = ["X-Limit", "x-limit", "X-Rest", "ratelimit-reset", "Content-Type", "Accept", "X-B"]
_VALUES = st.text(alphabet="ab1 é;=", max_size=6).map(str.strip)
_BLOCK_VALUES = st.lists(st.one_of(st.none(), _VALUES), min_size=3, max_size=3)
_PAIRS = st.lists(st.tuples(st.sampled_from(_NAMES), _VALUES), max_size=6)
_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "add", "clear"]), st.sampled_from(_NAMES), _VALUES),
    max_size=4,
)


def _lines(pairs: list[tuple[str, str]]) -> list[bytes]:
    return [f"{n}: {v}\r\n".encode("latin-1") for n, v in pairs]


@settings(max_examples=300, deadline=None)
@given(pairs=_PAIRS, values=_BLOCK_VALUES)
def test_block_apply_is_apply_ops_and_the_table_path(
    pairs: list[tuple[str, str]], values: list[str | None]
) -> None:
    lines = _lines(pairs)
    ops = _BLOCK.ops(values)
    expected = HeaderTable.for_ops(lines, ops).apply(lines)
    assert apply_ops(list(lines), ops) == expected
    assert _BLOCK.apply(list(lines), values) == expected


def test_a_block_checks_its_names_once() -> None:
    with pytest.raises(ValueError, match="invalid header name"):
        HeaderBlock(["X-Ok", "Bad Name"])
    with pytest.raises(ValueError, match="managed by the proxy"):
        HeaderBlock(["Content-Length"])  # engine-owned
    with pytest.raises(ValueError, match="twice"):
        HeaderBlock(["X-A", "x-a"])  # twice: the order of its lines would be ambiguous


# --------------------------------------------------------------------------- response side


def _one_by_one(ctx: FakeContext, values: list[str | None]) -> None:
    for name, value in zip(_BLOCK.names, values, strict=True):
        if value is None:
            ctx.clear_response_header(name)
        else:
            ctx.set_response_header(name, value)


def _contexts(
    before: list[tuple[str, str, str]], values: list[str | None], after: list[tuple[str, str, str]]
) -> tuple[FakeContext, FakeContext]:
    """(block context, one-header-at-a-time context) with the same changes made in access."""
    block, single = FakeContext("GET", "/"), FakeContext("GET", "/")
    for ctx in (block, single):
        ctx.phase = Phase.ACCESS
        change_response_headers(ctx, before)
    block.set_response_headers(_BLOCK, values)
    _one_by_one(single, values)
    for ctx in (block, single):
        change_response_headers(ctx, after)
    return block, single


@settings(max_examples=300, deadline=None)
@given(pairs=_PAIRS, before=_OPS, values=_BLOCK_VALUES, after=_OPS)
def test_a_response_block_gives_the_head_single_headers_give(
    pairs: list[tuple[str, str]],
    before: list[tuple[str, str, str]],
    values: list[str | None],
    after: list[tuple[str, str, str]],
) -> None:
    lines = _lines(pairs)
    # no response-phase plugin: changes put on the upstream's lines directly
    block, single = _contexts(before, values, after)
    assert block.apply_response_changes(list(lines)) == single.apply_response_changes(list(lines))
    assert block.response_block is None
    assert block.response_ops is None
    # a response-phase plugin: changes replayed into the response table
    block, single = _contexts(before, values, after)
    block.start_response(200, list(lines))
    single.start_response(200, list(lines))
    assert block.response_table is not None
    assert single.response_table is not None
    assert block.response_table.apply(list(lines)) == single.response_table.apply(list(lines))
    assert block.response_table.values == single.response_table.values


def test_a_response_block_alone_is_one_record() -> None:
    ctx = FakeContext("GET", "/")
    ctx.phase = Phase.ACCESS
    ctx.set_response_headers(_BLOCK, ["1", None, "3"])
    assert ctx.response_ops is None
    assert ctx.response_block is not None
    lines = ctx.apply_response_changes([b"x-rest: old\r\n", b"Server: up\r\n"])
    assert lines == [b"Server: up\r\n", b"X-Limit: 1\r\n", b"RateLimit-Reset: 3\r\n"]


def test_a_response_block_in_the_response_phase_changes_the_table() -> None:
    ctx = FakeContext("GET", "/")
    ctx.start_response(200, [b"X-Limit: old\r\n"])
    ctx.set_response_headers(_BLOCK, ["1", "2", None])
    assert ctx.response_header("x-limit") == "1"
    assert ctx.response_header("x-rest") == "2"


def test_a_response_block_keeps_the_phase_and_value_checks() -> None:
    ctx = FakeContext("GET", "/")
    ctx.phase = Phase.ACCESS
    with pytest.raises(ValueError, match="invalid value"):
        ctx.set_response_headers(_BLOCK, ["1", "2\r\nX-Evil: 1", "3"])
    with pytest.raises(ValueError, match="2 values for the 3 names"):
        ctx.set_response_headers(_BLOCK, ["1", "2"])  # a value per name
    ctx.phase = Phase.LOG
    with pytest.raises(PhaseError):
        ctx.set_response_headers(_BLOCK, ["1", "2", "3"])
    ctx.phase = Phase.BODY
    with pytest.raises(PhaseError):
        ctx.set_response_headers(_BLOCK, ["1", "2", "3"])


# --------------------------------------------------------------------------- request side

_REQ_NAMES = ["X-Consumer-ID", "x-consumer-username", "X-Anonymous-Consumer", "Accept", "X-A"]
_REQ_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "add", "clear"]), st.sampled_from(_REQ_NAMES), _VALUES),
    max_size=4,
)


def _head(ctx: FakeContext) -> bytes:
    forwarded = b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
    return request_head(ctx, ctx.req, b"/t", b"up.test", forwarded)


_CONSUMERS = st.sampled_from(
    [
        (Consumer(id="c-1", username="ann"), {"id": "cred-1"}),
        (Consumer(id="c-2", custom_id="x9"), None),  # anonymous
        (None, None),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.sampled_from(_REQ_NAMES), _VALUES), max_size=5),
    before=_REQ_OPS,
    who=_CONSUMERS,
    after=_REQ_OPS,
)
def test_authenticate_gives_the_head_the_table_gives(
    pairs: list[tuple[str, str]],
    before: list[tuple[str, str, str]],
    who: tuple[Consumer | None, dict[str, str] | None],
    after: list[tuple[str, str, str]],
) -> None:
    recorded = FakeContext("GET", "/", headers=pairs)
    tabled = FakeContext("GET", "/", headers=pairs)
    tabled._table()  # the general path: every change made on the whole table
    for ctx in (recorded, tabled):
        change_request_headers(ctx, before)
        ctx.authenticate(*who)
        change_request_headers(ctx, after)
    assert _head(recorded) == _head(tabled)
    assert dict(recorded.headers()) == dict(tabled.headers())


def test_authenticate_alone_is_one_record() -> None:
    ctx = FakeContext("GET", "/", headers=[("X-Consumer-ID", "spoofed")])
    ctx.authenticate(Consumer(id="c-1", username="ann"), {"id": "cred-1"})
    assert ctx.request_ops is None
    assert ctx.request_block is not None
    assert ctx.header("X-Consumer-ID") == "c-1"  # reads see it (the table is built now)
    assert ctx.request_block is None


def test_authenticate_refuses_a_value_that_would_inject_a_header() -> None:
    ctx = FakeContext("GET", "/")
    with pytest.raises(ValueError, match="invalid value"):
        ctx.authenticate(Consumer(id="c-1", username="ann\r\nX-Evil: 1"), None)
    assert check_header("X-Consumer-ID", None) == "x-consumer-id"


def test_a_memo_block_encodes_a_values_tuple_once_and_applies_alike() -> None:
    plain = HeaderBlock(["X-Consumer-ID", "X-Anon"])
    memo = HeaderBlock(["X-Consumer-ID", "X-Anon"], memo=True)
    lines = [b"x-consumer-id: forged\r\n", b"Accept: */*\r\n"]
    for values in (("c1", None), ("c2", "true"), ("c1", None)):
        assert memo.apply(lines, values) == plain.apply(lines, values)
    assert memo.memo is not None
    assert set(memo.memo) == {("c1", None), ("c2", "true")}
    assert plain.memo is None
    with pytest.raises(ValueError, match="1 values for the 2 names"):
        memo.apply(lines, ("c3",))
