"""``HeaderTable``: a header set as plugins see it (lower-case name → values) that remembers
which names a plugin changed, so the engine rewrites only those lines of a head.

Names and values are checked when set: a name must be an RFC 9110 token and a value must
not contain CR, LF or NUL (no header injection through a plugin).  Framing and hop-by-hop
headers belong to the engine and cannot be set by plugins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
ENGINE_OWNED = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


def check_header(name: str, value: str | None, *, any_name: bool = False) -> str:
    """The lower-case ``name``; ``ValueError`` for a bad name/value or (unless ``any_name``)
    an engine-owned name."""
    if not _TOKEN.match(name):
        raise ValueError(f"invalid header name {name!r}")
    lname = name.lower()
    if lname in ENGINE_OWNED and not any_name:
        raise ValueError(f"header {name!r} is managed by the proxy")
    if value is not None and _BAD_VALUE.search(value):
        raise ValueError(f"invalid value for header {name!r}")
    return lname


_FORWARDED = frozenset(
    {
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-path",
        "x-forwarded-prefix",
        "x-real-ip",
    }
)


class HeaderTable:
    """Lower-case name -> values, display names, and the names changed (name -> whether
    the original head had it: only those lines need removing from the head)."""

    __slots__ = ("changed", "display", "values")

    def __init__(self) -> None:
        self.values: dict[str, list[str]] = {}
        self.display: dict[str, str] = {}
        self.changed: dict[str, bool] | None = None

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[bytes, bytes]]) -> HeaderTable:
        """From parsed (name, value) pairs (the parser trims leading whitespace only)."""
        table = cls()
        values = table.values
        get = values.get
        for raw_name, raw_value in pairs:
            lname = raw_name.lower().decode("latin-1")
            bucket = get(lname)
            if bucket is None:
                values[lname] = [raw_value.rstrip().decode("latin-1")]
            else:
                bucket.append(raw_value.rstrip().decode("latin-1"))
        return table

    @classmethod
    def from_lines(cls, lines: Iterable[bytes]) -> HeaderTable:
        """From ready head lines (``b"Name: value\\r\\n"``)."""
        pairs = []
        for line in lines:
            name, _, value = line.partition(b":")
            pairs.append((name, value.strip()))
        return cls.from_pairs(pairs)

    def first(self, lname: str) -> str | None:
        bucket = self.values.get(lname)
        return bucket[0] if bucket else None

    def _touch(self, lname: str, name: str) -> None:
        """Call before changing ``lname``."""
        changed = self.changed
        if changed is None:
            changed = self.changed = {}
        if lname not in changed:
            changed[lname] = lname in self.values
        self.display[lname] = name  # the spelling of the plugin that set it last

    def set(self, name: str, value: str) -> None:
        lname = check_header(name, value)
        self._touch(lname, name)
        self.values[lname] = [value]

    def add(self, name: str, value: str) -> None:
        lname = check_header(name, value)
        self._touch(lname, name)
        self.values.setdefault(lname, []).append(value)

    def clear(self, name: str) -> None:
        lname = check_header(name, None)
        self._touch(lname, name)
        self.values.pop(lname, None)

    def lines_of(self, lname: str) -> list[bytes]:
        name = self.display.get(lname, lname).encode("latin-1")
        return [
            name + b": " + v.encode("latin-1", "replace") + b"\r\n"
            for v in self.values.get(lname, ())
        ]

    def apply(self, lines: list[bytes], skip: frozenset[str] = frozenset()) -> list[bytes]:
        """``lines`` with every changed name's lines replaced by its current values
        (names in ``skip`` are only removed)."""
        changed = self.changed
        if not changed:
            return lines
        replaced = {n.encode("latin-1") for n, existed in changed.items() if existed}
        if replaced:
            out = [ln for ln in lines if ln[: ln.find(b":")].lower() not in replaced]
        else:
            out = list(lines)  # only new names: nothing to take out
        for lname in changed:
            if lname not in skip:
                out.extend(self.lines_of(lname))
        return out

    def remove_from(self, blob: bytes) -> bytes:
        """A block of forwarding header lines without the lines of changed names."""
        changed = self.changed
        if not changed or not blob or not any(n in _FORWARDED for n in changed):
            return blob
        encoded = {n.encode("latin-1") for n in changed}
        lines = blob.split(b"\r\n")
        kept = [ln for ln in lines if ln and ln.partition(b":")[0].lower() not in encoded]
        return b"".join(ln + b"\r\n" for ln in kept)
