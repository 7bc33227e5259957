"""The runtime's fast paths give exactly what the general (table) paths give: header changes
put on head lines without a table (``apply_ops``, request heads), the lazy ``headers()``
view, and the request/context cycle dropped once a request is over."""

from __future__ import annotations

import gc
import time
from typing import ClassVar

import pytest
from filters_kit import change_request_headers
from hypothesis import given, settings
from hypothesis import strategies as st

from meshgate.proxy.filters.api import PluginConfig, PluginHandler, RequestContext
from meshgate.proxy.filters.flow import request_head
from meshgate.proxy.filters.headers import HeaderTable, apply_ops, check_header
from meshgate.proxy.filters.testing import FakeContext
from meshgate.proxy.filters.testing_http import live_gateway, plugin
from meshgate.snapshot import Consumer

# a few names in several spellings, some the engine keeps out of the lines (Host, forwarding)
_NAMES = ["X-A", "x-a", "X-B", "x-b", "Content-Type", "X-Forwarded-For", "Host", "Accept"]
_VALUES = st.text(alphabet="ab1 é;=", max_size=6).map(str.strip)
_OPS = st.lists(
    st.tuples(st.sampled_from(["set", "add", "clear"]), st.sampled_from(_NAMES), _VALUES),
    max_size=8,
)
_PAIRS = st.lists(
    st.tuples(st.sampled_from([n for n in _NAMES if n.lower() != "host"]), _VALUES), max_size=6
)


def _recorded(ops: list[tuple[str, str, str]]) -> list[tuple[str, str, str, str]]:
    return [(op, check_header(name, None), name, "" if op == "clear" else v) for op, name, v in ops]


@settings(max_examples=300, deadline=None)
@given(pairs=_PAIRS, ops=_OPS)
def test_apply_ops_is_the_table_path(
    pairs: list[tuple[str, str]], ops: list[tuple[str, str, str]]
) -> None:
    lines = [f"{n}: {v}\r\n".encode("latin-1") for n, v in pairs]
    recorded = _recorded(ops)
    assert apply_ops(list(lines), recorded) == HeaderTable.for_ops(lines, recorded).apply(lines)


def test_apply_ops_sets_replace_upstream_lines_in_first_touch_order() -> None:
    lines = [b"Server: up\r\n", b"x-a: old\r\n", b"Content-Length: 5\r\n"]
    ops = _recorded([("set", "X-B", "1"), ("set", "X-A", "2"), ("clear", "server", ""),
                     ("set", "x-b", "3")])  # fmt: skip
    assert apply_ops(lines, ops) == [b"Content-Length: 5\r\n", b"x-b: 3\r\n", b"X-A: 2\r\n"]


def _head(ctx: FakeContext) -> bytes:
    forwarded = b"X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
    return request_head(ctx, ctx.req, b"/t", b"up.test", forwarded)


@settings(max_examples=300, deadline=None)
@given(pairs=_PAIRS, ops=_OPS, authenticated=st.booleans())
def test_recorded_request_changes_give_the_head_the_table_gives(
    pairs: list[tuple[str, str]], ops: list[tuple[str, str, str]], authenticated: bool
) -> None:
    recorded = FakeContext("GET", "/", headers=pairs)
    tabled = FakeContext("GET", "/", headers=pairs)
    tabled._table()  # the general path: the whole table first, every change made on it
    consumer = Consumer(id="c-1", username="ann")
    for ctx in (recorded, tabled):
        if authenticated:
            ctx.authenticate(consumer, {"id": "cred-1"})
        change_request_headers(ctx, ops)
    assert tabled.request_ops is None
    assert _head(recorded) == _head(tabled)
    assert dict(recorded.headers()) == dict(tabled.headers())


def test_authenticate_is_recorded_without_building_the_table() -> None:
    ctx = FakeContext("GET", "/", headers=[("X-Consumer-Username", "spoofed"), ("Accept", "*/*")])
    ctx.authenticate(Consumer(id="c-1", username="ann"), {"id": "cred-1"})
    assert ctx._headers is None
    head = _head(ctx)
    assert ctx._headers is None  # applied to the head's lines directly
    assert b"spoofed" not in head
    for line in (b"X-Consumer-ID: c-1\r\n", b"X-Consumer-Username: ann\r\n",
                 b"X-Credential-Identifier: cred-1\r\n", b"Accept: */*\r\n"):  # fmt: skip
        assert line in head
    assert ctx.header("x-consumer-username") == "ann"  # a later read sees the change


@settings(max_examples=200, deadline=None)
@given(pairs=_PAIRS, probe=st.sampled_from([*_NAMES, "x-a", "missing", "X-Mültí", "ĉ"]))
def test_the_headers_view_reads_like_the_table(pairs: list[tuple[str, str]], probe: str) -> None:
    view = FakeContext("GET", "/", headers=pairs).headers()
    table = FakeContext("GET", "/", headers=pairs)._table().values
    assert view.get(probe) == table.get(probe)
    assert (probe in view) == (probe in table)
    assert dict(view) == table


def test_the_headers_view_is_live() -> None:
    ctx = FakeContext("GET", "/", headers=[("apikey", "k1"), ("ApiKey", "k2")])
    view = ctx.headers()
    assert view.get("apikey") == ["k1", "k2"]  # a repeated header: both values
    assert ctx._headers is None  # one name looked up: no table built
    ctx.set_header("apikey", "k3")
    assert view["apikey"] == ["k3"]
    assert view.get("ApiKey") is None  # keys are lower-case, as in the table


class _Remember(PluginHandler):
    """Marks the contexts it sees with this run's token (access), and logs (log phase)."""

    name = "test-remember"
    PRIORITY = 5
    Config = PluginConfig
    seen: ClassVar[list[str]] = []
    token: ClassVar[object] = object()

    def access(self, ctx: RequestContext) -> None:
        self.seen.append(type(ctx).__name__)
        ctx.shared["test-remember"] = self.token

    def log(self, ctx: RequestContext) -> None:
        ctx.shared["logged"] = True


class _RememberAndDeny(_Remember):
    """Ends every request in access with a 403 (an ``Exit`` raised through the runtime)."""

    name = "test-remember-deny"

    def access(self, ctx: RequestContext) -> None:
        super().access(ctx)
        ctx.exit(403, {"message": "no"})


def _live_contexts(type_name: str, token: object) -> int:
    """Contexts of this run (marked with ``token``) the cyclic collector still tracks: freed
    or not. No weak references: a compiled engine's contexts take none; and the other tests'
    contexts some queue may still hold do not count."""
    return sum(
        1
        for obj in gc.get_objects()
        if type(obj).__name__ == type_name and obj.shared.get("test-remember") is token
    )


@pytest.mark.parametrize(("handler", "status"), [(_Remember, 200), (_RememberAndDeny, 403)])
def test_a_finished_request_frees_its_context_without_the_cyclic_gc(
    handler: type[_Remember], status: int
) -> None:
    """The request and its plugin context point at each other while the request runs; once
    it is over (log phase done) the link is dropped, so reference counting frees both.  An
    ``Exit`` kept on the context must not keep the frames (holding it) it was raised through."""
    _Remember.seen.clear()
    _Remember.token = token = object()
    with live_gateway(plugins=[plugin(handler.name, {}, route="r1")], handlers=[handler]) as gw:
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                assert gw.request("GET", "/r1/x").status == status
            kind = _Remember.seen[0]
            deadline = time.monotonic() + 5
            while _live_contexts(kind, token):
                assert time.monotonic() < deadline, "contexts still alive without a gc pass"
                time.sleep(0.01)
        finally:
            gc.enable()
    assert len(_Remember.seen) == 3
