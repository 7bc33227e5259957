"""The portable cursor codec: round trip, signature, shape checks, node secret file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshgate.events.http_api.b64 import b64url_decode, b64url_encode
from meshgate.events.http_api.cursor import Cursor, CursorCodec, CursorError, node_secret

SECRET = b"k" * 32
codec = CursorCodec(SECRET)

topics = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=40)
positions = st.dictionaries(st.integers(0, 4095), st.integers(0, 2**63 - 1), max_size=20)


@given(topics, positions)
def test_round_trip(topic: str, where: dict[int, int]) -> None:
    token = codec.encode(Cursor(topic, where))
    assert token.isascii()
    assert " " not in token
    decoded = codec.decode(token)
    assert decoded.topic == topic
    assert dict(decoded.positions) == where


@given(topics, positions, st.integers(0, 200), st.integers(1, 255))
def test_any_flipped_character_is_refused(
    topic: str, where: dict[int, int], index: int, delta: int
) -> None:
    token = codec.encode(Cursor(topic, where))
    i = index % len(token)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    replacement = alphabet[(alphabet.index(token[i]) + delta) % len(alphabet)]
    tampered = token[:i] + replacement + token[i + 1 :]
    if tampered != token:
        with pytest.raises(CursorError):
            codec.decode(tampered)


def test_another_nodes_secret_is_accepted_only_when_shared() -> None:
    token = CursorCodec(SECRET).encode(Cursor("t", {0: 5}))
    assert CursorCodec(bytes(SECRET)).decode(token).positions == {0: 5}
    with pytest.raises(CursorError):
        CursorCodec(b"x" * 32).decode(token)


def _signed(payload: object) -> str:
    raw = b64url_encode(json.dumps(payload).encode())
    return f"{raw}.{codec._sign(raw)}"


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"topic": "t"},
        {"topic": "", "partitions": {}},
        {"topic": "t", "partitions": {"0": -1}},
        {"topic": "t", "partitions": {"x": 1}},
        {"topic": "t", "partitions": {"0": 1.5}},
        {"topic": "t", "partitions": {"0": True}},
        {"topic": "t", "partitions": {}, "extra": 1},
    ],
)
def test_signed_but_malformed_payloads_are_refused(payload: object) -> None:
    with pytest.raises(CursorError):
        codec.decode(_signed(payload))


@pytest.mark.parametrize("token", ["", ".", "abc", "a.b.c", "!!!.xyz", "x" * 20000])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(CursorError):
        codec.decode(token)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        CursorCodec(b"short")


def test_node_secret_is_made_once_and_shared(tmp_path: Path) -> None:
    first = node_secret(tmp_path)
    assert len(first) == 32
    assert node_secret(tmp_path) == first
    assert (tmp_path / "cursor.secret").stat().st_mode & 0o777 == 0o600


@given(st.binary(max_size=64))
def test_b64url_round_trip(data: bytes) -> None:
    encoded = b64url_encode(data)
    assert "=" not in encoded
    if data:
        assert b64url_decode(encoded) == data
