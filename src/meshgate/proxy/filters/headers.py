"""``HeaderTable``: a header set as plugins see it (lower-case name → values) that remembers
which names a plugin changed, so the engine rewrites only those lines of a head.

Names and values are checked when set: a name must be an RFC 9110 token and a value must
not contain CR, LF or NUL (no header injection through a plugin).  Framing and hop-by-hop
headers belong to the engine and cannot be set by plugins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# A recorded header change: (op, lower-case name, name as given, value); op is "set", "add"
# or "clear" (value "").  Name and value were checked when it was recorded.
Op = tuple[str, str, str, str]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
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


# Valid names seen, as given -> lower-case (plugins set the same few names on every request).
_CHECKED_NAMES: dict[str, str] = {}
_CHECKED_NAMES_MAX = 4096


def check_header(name: str, value: str | None, *, any_name: bool = False) -> str:
    """The lower-case ``name``; ``ValueError`` for a bad name/value or (unless ``any_name``)
    an engine-owned name."""
    lname = _CHECKED_NAMES.get(name)
    if lname is None:
        if not _TOKEN.match(name):
            raise ValueError(f"invalid header name {name!r}")
        lname = name.lower()
        if len(_CHECKED_NAMES) >= _CHECKED_NAMES_MAX:
            _CHECKED_NAMES.clear()
        _CHECKED_NAMES[name] = lname
    if lname in ENGINE_OWNED and not any_name:
        raise ValueError(f"header {name!r} is managed by the proxy")
    if value is not None and ("\r" in value or "\n" in value or "\x00" in value):
        raise ValueError(f"invalid value for header {name!r}")
    return lname


# name as given -> (b"Name: ", lower-case name as bytes): the pieces ``apply_ops`` needs
_ENCODED_NAMES: dict[str, tuple[bytes, bytes]] = {}


def _encoded_name(name: str) -> tuple[bytes, bytes]:
    encoded = _ENCODED_NAMES.get(name)
    if encoded is None:
        if len(_ENCODED_NAMES) >= _CHECKED_NAMES_MAX:
            _ENCODED_NAMES.clear()
        raw = name.encode("latin-1")
        encoded = _ENCODED_NAMES[name] = (raw + b": ", raw.lower())
    return encoded


def apply_ops(lines: list[bytes], ops: Sequence[Op]) -> list[bytes]:
    """``lines`` (``b"Name: value\\r\\n"``) with the recorded ``ops`` applied: exactly
    ``HeaderTable.for_ops(lines, ops).apply(lines)`` (lines of every name an op touched are
    taken out, then each touched name that still has values is appended, in the order names
    were first touched, spelled as the last op spelled it), without building a table when
    the ops only ``set`` and ``clear`` (what plugins nearly always do)."""
    final: dict[str, tuple[str, str] | None] = {}
    for op, lname, name, value in ops:
        if op == "set":
            final[lname] = (name, value)
        elif op == "clear":
            final[lname] = None
        else:
            return HeaderTable.for_ops(lines, ops).apply(lines)
    drop = set()
    added = []
    for lname, pair in final.items():
        if pair is None:
            drop.add(lname.encode("latin-1"))
        else:
            prefix, lower = _encoded_name(pair[0])
            drop.add(lower)
            added.append(prefix + pair[1].encode("latin-1", "replace") + b"\r\n")
    out = [ln for ln in lines if ln[: ln.find(b":")].lower() not in drop]
    out += added
    return out


def check_value(name: str, value: str) -> None:
    """``ValueError`` for a value that would inject a header (CR, LF or NUL)."""
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"invalid value for header {name!r}")


class HeaderBlock:
    """A fixed list of header names a plugin sets (or clears: value None) together on every
    request — checked and encoded once, so that a request records one ``(block, values)``
    pair instead of an op per name, and ``apply`` puts it on a head's lines directly.
    ``apply(lines, values)`` is exactly ``apply_ops(lines, ops(values))``."""

    __slots__ = ("drop", "firsts", "lnames", "memo", "names", "prefixes")

    def __init__(self, names: Sequence[str], *, memo: bool = False) -> None:
        self.names = tuple(names)
        # memo: the encoded lines of each values tuple seen (bounded), for blocks whose values
        # repeat across requests (a consumer's identity), not per-request figures; a tuple in it
        # was checked (``apply`` only ever gets recorded values, which ``check`` passed)
        self.memo: dict[tuple[str | None, ...], list[bytes]] | None = {} if memo else None
        self.lnames = tuple(check_header(name, None) for name in self.names)
        if len(set(self.lnames)) != len(self.lnames):
            raise ValueError(f"a header block names a header twice: {self.names}")
        self.prefixes = tuple(name.encode("latin-1") + b": " for name in self.names)
        self.drop = frozenset(lname.encode("latin-1") for lname in self.lnames)
        # the first bytes (either case) the names start with: a line starting otherwise
        # keeps without its name being cut out and lower-cased (most lines, most requests)
        self.firsts = frozenset(
            spelled[:1] for lname in self.drop for spelled in (lname, lname.upper())
        )

    def __repr__(self) -> str:
        return f"HeaderBlock({self.names!r})"

    def ops(self, values: Sequence[str | None]) -> list[Op]:
        """The same changes as recorded ops (in the block's order)."""
        return [
            ("clear", lname, name, "") if value is None else ("set", lname, name, value)
            for lname, name, value in zip(self.lnames, self.names, values, strict=True)
        ]

    def check(self, values: Sequence[str | None]) -> tuple[str | None, ...]:
        """``values`` as a tuple, one per name, each checked by ``check_value`` (a memo block
        skips the values it has seen)."""
        checked = tuple(values)
        memo = self.memo
        if memo is not None and checked in memo:
            return checked
        names = self.names
        if len(checked) != len(names):
            raise ValueError(f"{len(checked)} values for the {len(names)} names of {self!r}")
        for i in range(len(names)):
            value = checked[i]
            if value is not None:
                check_value(names[i], value)
        return checked

    def apply(self, lines: list[bytes], values: Sequence[str | None]) -> list[bytes]:
        """``lines`` without this block's names, then a line per set value, in order."""
        drop, firsts = self.drop, self.firsts
        out = [
            ln for ln in lines if ln[:1] not in firsts or ln[: ln.find(b":")].lower() not in drop
        ]
        memo = self.memo
        if memo is None:
            out.extend(self._encode(values))
            return out
        key = tuple(values)
        encoded = memo.get(key)
        if encoded is None:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            encoded = memo[key] = self._encode(values)
        out.extend(encoded)
        return out

    def _encode(self, values: Sequence[str | None]) -> list[bytes]:
        prefixes = self.prefixes
        if len(values) != len(prefixes):
            raise ValueError(f"{len(values)} values for the {len(prefixes)} names of {self!r}")
        encoded: list[bytes] = []
        for i in range(len(prefixes)):
            value = values[i]
            if value is not None:
                encoded.append(prefixes[i] + value.encode("latin-1", "replace") + b"\r\n")
        return encoded


_MEMO_LIMIT = 4096

# What a context records for a block: the block and its values (checked when recorded).
BlockValues = tuple[HeaderBlock, tuple[str | None, ...]]


FORWARDED_NAMES = _FORWARDED = frozenset(
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

    def replay(self, ops: Sequence[Op]) -> None:
        """Apply ``(op, lname, name, value)`` records whose name and value were checked when
        they were recorded (``set``/``add``/``clear``)."""
        values = self.values
        for op, lname, name, value in ops:
            self._touch(lname, name)
            if op == "set":
                values[lname] = [value]
            elif op == "add":
                values.setdefault(lname, []).append(value)
            else:
                values.pop(lname, None)

    def add(self, name: str, value: str) -> None:
        lname = check_header(name, value)
        self._touch(lname, name)
        self.values.setdefault(lname, []).append(value)

    def clear(self, name: str) -> None:
        lname = check_header(name, None)
        if lname not in self.values and lname not in _FORWARDED:
            changed = self.changed
            if changed is None or lname not in changed:
                return  # neither in the head nor set since: nothing to take out
        self._touch(lname, name)
        self.values.pop(lname, None)

    def change(self, op: str, name: str, value: str) -> None:
        """``set``, ``add`` or (any other ``op``) ``clear`` ``name``, checked as each of those."""
        if op == "set":
            self.set(name, value)
        elif op == "add":
            self.add(name, value)
        else:
            self.clear(name)

    def lines_of(self, lname: str) -> list[bytes]:
        values = self.values.get(lname)
        if not values:
            return []
        name = self.display.get(lname, lname).encode("latin-1")
        if len(values) == 1:
            return [b"%s: %s\r\n" % (name, values[0].encode("latin-1", "replace"))]
        return [b"%s: %s\r\n" % (name, v.encode("latin-1", "replace")) for v in values]

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
        values = self.values
        for lname in changed:
            if lname not in skip and lname in values:
                out += self.lines_of(lname)
        return out

    @classmethod
    def for_ops(cls, lines: list[bytes], ops: Sequence[Op]) -> HeaderTable:
        """A table holding only the names ``ops`` touch (their values in ``lines`` first),
        with ``ops`` replayed: ``apply(lines)`` gives the head without a full table."""
        touched = {lname for _, lname, _, _ in ops}
        table = cls()
        values = table.values
        for line in lines:
            name, _, value = line.partition(b":")
            lname = name.lower().decode("latin-1")
            if lname in touched:
                values.setdefault(lname, []).append(value.strip().decode("latin-1"))
        table.replay(ops)
        return table

    def remove_from(self, blob: bytes) -> bytes:
        """A block of forwarding header lines without the lines of changed names."""
        changed = self.changed
        if not changed or not blob or not any(n in _FORWARDED for n in changed):
            return blob
        encoded = {n.encode("latin-1") for n in changed}
        lines = blob.split(b"\r\n")
        kept = [ln for ln in lines if ln and ln.partition(b":")[0].lower() not in encoded]
        return b"".join(ln + b"\r\n" for ln in kept)
