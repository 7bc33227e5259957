"""The supervisor/worker frame codec: whole, byte by byte, cut short, and garbage."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.agent.frames import MAX_FRAME, FrameDecoder, FrameError, encode

MESSAGES = [{"type": "ack", "version": "abc"}, {"type": "snapshot", "snapshot": "{}" * 100}]


def test_whole_stream_decodes_every_message() -> None:
    data = b"".join(encode(m) for m in MESSAGES)
    assert FrameDecoder().feed(data) == MESSAGES


def test_one_byte_at_a_time() -> None:
    data = b"".join(encode(m) for m in MESSAGES)
    decoder = FrameDecoder()
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    assert out == MESSAGES
    assert decoder.pending == 0


def test_cut_short_yields_nothing_and_keeps_the_bytes() -> None:
    data = encode(MESSAGES[0])
    decoder = FrameDecoder()
    assert decoder.feed(data[:-1]) == []
    assert decoder.pending == len(data) - 1
    assert decoder.feed(data[-1:]) == [MESSAGES[0]]


def test_oversized_length_is_refused() -> None:
    with pytest.raises(FrameError, match="over the"):
        FrameDecoder().feed(struct.pack("!I", MAX_FRAME + 1))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
def test_non_object_bodies_are_refused(body: bytes) -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack("!I", len(body)) + body)


@given(
    st.lists(
        st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=20), max_size=4),
        max_size=5,
    ),
    st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=10),
)
def test_any_split_gives_the_same_messages(
    messages: list[dict[str, object]], cuts: list[int]
) -> None:
    data = b"".join(encode(m) for m in messages)
    decoder = FrameDecoder()
    out: list[dict[str, object]] = []
    pos = 0
    i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        out += decoder.feed(data[pos : pos + step])
        pos += step
        i += 1
    assert out == messages
