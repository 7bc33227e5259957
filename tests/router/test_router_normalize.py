"""Path, host and regex normalization used by the router."""

from __future__ import annotations

import re

import pytest

from meshgate.proxy.router_entries import regex_literal_prefix
from meshgate.proxy.router_normalize import (
    normalize_path,
    normalize_regex_path,
    remove_dot_segments,
    sanitize_postfix,
    split_host_port,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/a%2fb", "/a%2Fb"),  # triplets upper-cased, reserved stay encoded
        ("/%7Euser/%41%62c", "/~user/Abc"),  # unreserved decoded
        ("/a%20b", "/a%20b"),  # not unreserved: kept, already upper
        ("/a/b/../c/./d", "/a/c/d"),
        ("/a/..", "/"),
        ("/..", "/"),
        ("/../../x", "/x"),
        ("/a/.", "/a/"),
        ("/a/b/", "/a/b/"),
        ("/a/%2e%2E/b", "/b"),  # decoded dots are dot segments
        ("//a///b", "/a/b"),
        ("/a//", "/a/"),
        ("/public//../admin", "/admin"),  # empty segments merged before ".." pops
        ("/.well-known/x", "/.well-known/x"),
        ("/caf\u00e9", "/caf%C3%A9"),
        ("/a b|c", "/a%20b%7Cc"),
        ("/a%zz", "/a%zz"),  # not a triplet: left alone
    ],
)
def test_normalize_path(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


def test_normalize_path_leaves_clean_paths_untouched() -> None:
    path = "/api/v1/items-list_~x"
    assert normalize_path(path) is path


def test_normalize_path_surrogate_escaped_bytes_are_encoded_as_the_original_bytes() -> None:
    raw = b"/caf\xe9".decode("utf-8", "surrogateescape")  # a latin-1 byte, not UTF-8
    assert normalize_path(raw) == "/caf%E9"


def test_remove_dot_segments_keeps_trailing_slash_only_after_empty_or_dot() -> None:
    assert remove_dot_segments("/a/b") == "/a/b"
    assert remove_dot_segments("/a/b/..") == "/a/"
    assert remove_dot_segments("/") == "/"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (r"/a%2Eb", r"/a\.b"),  # decoded meta character stays literal
        (r"/%7euser", r"/\~user"),
        (r"/x%2fy", r"/x%2Fy"),
        (r"/(?<ver>\d+)", r"/(?P<ver>\d+)"),
        (r"/(?<=a)b(?<!c)", r"/(?<=a)b(?<!c)"),
        (r"/a/../b", r"/a/../b"),  # no dot-segment removal in regexes
    ],
)
def test_normalize_regex_path(raw: str, expected: str) -> None:
    assert normalize_regex_path(raw) == expected
    re.compile(expected)


def test_decoded_dot_in_regex_route_is_literal() -> None:
    pattern = re.compile("^" + normalize_regex_path("/a%2Eb"))
    assert pattern.search("/a.b")
    assert not pattern.search("/axb")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("Example.COM", ("example.com", None)),
        ("Example.COM:8080", ("example.com", 8080)),
        ("example.com.", ("example.com", None)),
        ("example.com.:80", ("example.com", 80)),
        ("[::1]:8080", ("[::1]", 8080)),
        ("[::1]", ("[::1]", None)),
        ("host:abc", ("host:abc", None)),
        ("", ("", None)),
    ],
)
def test_split_host_port(host: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(host) == expected


@pytest.mark.parametrize(
    ("postfix", "expected"),
    [("", ""), (".", ""), ("..", ""), ("./x", "x"), ("../x", "x"), ("/x", "/x"), (".x", ".x")],
)
def test_sanitize_postfix(postfix: str, expected: str) -> None:
    assert sanitize_postfix(postfix) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"/status/\d+", "/status/"),
        (r"/ab?c", "/a"),
        (r"/ab*", "/a"),
        (r"/x{2}", "/"),
        (r"/a|/b", ""),
        (r"(?i)/a", ""),
        (r"/a\.b\/c", "/a.b/c"),
        (r"/a\.?", "/a"),
        (r"/a\d", "/a"),
        (r"/a.b", "/a"),
        (r"/a%2Fb-c_~", "/a%2Fb-c_~"),
        (r"/(?P<v>\d+)", "/"),
        ("", ""),
    ],
)
def test_regex_literal_prefix(pattern: str, expected: str) -> None:
    assert regex_literal_prefix(pattern) == expected
