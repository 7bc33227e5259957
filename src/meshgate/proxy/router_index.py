"""The router's lookup index: which ranked entries can possibly match a request.

Entries are bucketed by host (exact name, ``*.suffix`` and ``prefix.*`` keyed on label
boundaries, hostless), each bucket by path (plain prefixes keyed by the prefix itself and
probed once per prefix length present; regex and pathless entries in lists), and a large
group of entries sharing a path is keyed again by an exact header value (many per-tenant
header routes on one path).  Every list is in rank order, so a scan stops at the first entry
that matches or that cannot beat the best match found so far (``bound``).

An index is never changed once built: ``HostIndex.updated`` makes the index of a changed
route set by copying only the host buckets, path groups and dicts the change touches and
sharing everything else with the old index, which keeps serving lookups meanwhile.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Generic, TypeVar

from meshgate.proxy.router_entries import EXACT, PREFIX, SUFFIX, Entry

T = TypeVar("T")

HostKey = tuple[str, int | None]

# Below this many entries a group is scanned as a list; above it, keyed by header value.
HEADER_KEYING_THRESHOLD = 16
# Ranks above every entry's: the bound of a lookup that has found nothing yet.
NO_RANK = 1 << 62

_rank = attrgetter("rank")
# Where an entry sits in a path index: plain prefix, regex literal start, other regex, no path.
_PREFIX_GROUP, _REGEX_PREFIX_GROUP, _REGEX_GROUP, _PATHLESS_GROUP = range(4)
GroupKey = tuple[int, str]
# Where an entry sits in a host index: the table ("exact", "suffix", "prefix", "hostless",
# "unindexed") and the host key in it.
HostSlot = tuple[str, HostKey | None]


@dataclass(slots=True, eq=False)
class Group(Generic[T]):
    """Entries sharing a host bucket and a path key, in rank order."""

    entries: list[Entry[T]] = field(default_factory=list)
    # header name -> exact lower-case value -> entries that need it (only for big groups)
    by_header: dict[str, dict[str, list[Entry[T]]]] | None = None
    unkeyed: list[Entry[T]] = field(default_factory=list)  # big groups: entries not keyed

    def add(self, entry: Entry[T]) -> None:
        if not self.entries or self.entries[-1] is not entry:
            self.entries.append(entry)

    def updated(self, gone: set[Entry[T]], came: list[Entry[T]]) -> Group[T]:
        """A sealed copy of this group without ``gone`` and with ``came`` (by rank)."""
        entries = [e for e in self.entries if e not in gone] if gone else list(self.entries)
        for entry in came:
            position = bisect_left(entries, entry.rank, key=_rank)
            if position == len(entries) or entries[position] is not entry:
                entries.insert(position, entry)
        group: Group[T] = Group(entries)
        group.seal()
        return group

    def seal(self) -> None:
        if len(self.entries) <= HEADER_KEYING_THRESHOLD:
            return
        by_header: dict[str, dict[str, list[Entry[T]]]] = {}
        for entry in self.entries:
            matcher = next((m for m in entry.headers if m.exact and not m.regexes), None)
            if matcher is None:
                self.unkeyed.append(entry)
                continue
            table = by_header.setdefault(matcher.name, {})
            for value in matcher.exact:
                table.setdefault(value, []).append(entry)
        if by_header:
            self.by_header = by_header

    def candidate_lists(self, headers: Mapping[str, str] | None) -> list[list[Entry[T]]]:
        if self.by_header is None:
            return [self.entries]
        lists = [self.unkeyed]
        if headers:
            for name, table in self.by_header.items():
                value = headers.get(name)
                if value is None:
                    continue
                lowered = value.lower()
                keys = [lowered]
                if "," in lowered:
                    keys.extend(piece.strip() for piece in lowered.split(","))
                for key in keys:
                    found = table.get(key)
                    if found is not None:
                        lists.append(found)
        return lists

    def first(
        self,
        bound: int,
        npath: str | None,
        method: str,
        hostname: str,
        port: int | None,
        headers: Mapping[str, str] | None,
        sni: str | None,
        check_host: bool,
    ) -> Entry[T] | None:
        """The best-ranked entry that matches and ranks above ``bound``.  ``npath`` is given
        for regex groups (prefix groups were selected by their path already)."""
        found: Entry[T] | None = None
        for candidates in self.candidate_lists(headers):
            for entry in candidates:
                if entry.rank >= bound:
                    break
                if (
                    (npath is None or (entry.regex is not None and entry.regex.search(npath)))
                    and entry.rest_matches(method, headers, sni)
                    and (not check_host or entry.host_matches(hostname, port))
                ):
                    found, bound = entry, entry.rank
                    break
        return found


@dataclass(slots=True, eq=False)
class PathIndex(Generic[T]):
    """The entries of one host bucket, indexed by path."""

    prefixes: dict[str, Group[T]] = field(default_factory=dict)
    lengths: list[int] = field(default_factory=list)  # distinct prefix lengths, ascending
    regexes: Group[T] = field(default_factory=Group)  # regexes without a literal start
    regex_prefixes: dict[str, Group[T]] = field(default_factory=dict)  # by literal start
    regex_lengths: list[int] = field(default_factory=list)
    pathless: Group[T] = field(default_factory=Group)
    check_host: bool = False  # holds entries whose host was not indexed: test it per entry
    min_rank: int = 0  # the best rank held here: a lookup already holding better skips it

    def add(self, entry: Entry[T]) -> None:
        if entry.prefix is not None:
            self.prefixes.setdefault(entry.prefix, Group()).add(entry)
        elif entry.regex is not None and entry.regex_literal:
            self.regex_prefixes.setdefault(entry.regex_literal, Group()).add(entry)
        elif entry.regex is not None:
            self.regexes.add(entry)
        else:
            self.pathless.add(entry)

    def updated(self, gone: list[Entry[T]], came: list[Entry[T]]) -> PathIndex[T]:
        """A sealed copy without ``gone`` and with ``came``; only the touched groups are new."""
        new: PathIndex[T] = PathIndex(
            dict(self.prefixes),
            self.lengths,
            self.regexes,
            dict(self.regex_prefixes),
            self.regex_lengths,
            self.pathless,
            self.check_host,
            self.min_rank,
        )
        changes: dict[GroupKey, tuple[set[Entry[T]], list[Entry[T]]]] = {}
        for entry in gone:
            changes.setdefault(_group_key(entry), (set(), []))[0].add(entry)
        for entry in came:
            changes.setdefault(_group_key(entry), (set(), []))[1].append(entry)
        # per key kind: lengths of keys added, of keys removed (the set of lengths may change)
        added_lengths: dict[int, set[int]] = {_PREFIX_GROUP: set(), _REGEX_PREFIX_GROUP: set()}
        removed_lengths: dict[int, set[int]] = {_PREFIX_GROUP: set(), _REGEX_PREFIX_GROUP: set()}
        for (kind, key), (gone_here, came_here) in changes.items():
            if kind == _REGEX_GROUP:
                new.regexes = new.regexes.updated(gone_here, came_here)
            elif kind == _PATHLESS_GROUP:
                new.pathless = new.pathless.updated(gone_here, came_here)
            else:
                table = new.prefixes if kind == _PREFIX_GROUP else new.regex_prefixes
                old_group = table.get(key)
                group = (old_group or Group()).updated(gone_here, came_here)
                if group.entries:
                    table[key] = group
                elif old_group is not None:
                    del table[key]
                if old_group is None and group.entries:
                    added_lengths[kind].add(len(key))
                elif old_group is not None and not group.entries:
                    removed_lengths[kind].add(len(key))
        if added_lengths[_PREFIX_GROUP] or removed_lengths[_PREFIX_GROUP]:
            new.lengths = _key_lengths(
                new.prefixes,
                self.lengths,
                added_lengths[_PREFIX_GROUP],
                removed_lengths[_PREFIX_GROUP],
            )
        if added_lengths[_REGEX_PREFIX_GROUP] or removed_lengths[_REGEX_PREFIX_GROUP]:
            new.regex_lengths = _key_lengths(
                new.regex_prefixes,
                self.regex_lengths,
                added_lengths[_REGEX_PREFIX_GROUP],
                removed_lengths[_REGEX_PREFIX_GROUP],
            )
        if any(entry.rank <= self.min_rank for entry in gone):
            new.min_rank = new.best_rank()
        elif came:
            new.min_rank = min(self.min_rank, min(entry.rank for entry in came))
        return new

    def best_rank(self) -> int:
        """The best rank of the entries held here (``NO_RANK`` when empty)."""
        groups = (*self.prefixes.values(), *self.regex_prefixes.values())
        best = min((g.entries[0].rank for g in groups if g.entries), default=NO_RANK)
        for group in (self.regexes, self.pathless):
            if group.entries:
                best = min(best, group.entries[0].rank)
        return best

    def is_empty(self) -> bool:
        groups = (self.prefixes, self.regex_prefixes, self.regexes.entries, self.pathless.entries)
        return not any(groups)

    def seal(self) -> None:
        self.lengths = sorted({len(prefix) for prefix in self.prefixes})
        self.regex_lengths = sorted({len(literal) for literal in self.regex_prefixes})
        groups = (*self.prefixes.values(), *self.regex_prefixes.values())
        for group in (*groups, self.regexes, self.pathless):
            group.seal()
        self.min_rank = self.best_rank()

    def best(
        self,
        npath: str,
        method: str,
        hostname: str,
        port: int | None,
        headers: Mapping[str, str] | None,
        sni: str | None,
        bound: int,
    ) -> Entry[T] | None:
        """The best-ranked entry here that matches the request and ranks above ``bound``."""
        found: Entry[T] | None = None
        if self.min_rank >= bound:
            return None
        check_host = self.check_host
        path_length = len(npath)
        if self.lengths:
            prefixes = self.prefixes
            for length in self.lengths:
                if length > path_length:
                    break
                group = prefixes.get(npath[:length])
                if group is not None:
                    entry = group.first(
                        bound, None, method, hostname, port, headers, sni, check_host
                    )
                    if entry is not None:
                        found, bound = entry, entry.rank
        if self.regex_lengths:
            regex_prefixes = self.regex_prefixes
            for length in self.regex_lengths:
                if length > path_length:
                    break
                group = regex_prefixes.get(npath[:length])
                if group is not None:
                    entry = group.first(
                        bound, npath, method, hostname, port, headers, sni, check_host
                    )
                    if entry is not None:
                        found, bound = entry, entry.rank
        if self.regexes.entries:
            entry = self.regexes.first(
                bound, npath, method, hostname, port, headers, sni, check_host
            )
            if entry is not None:
                found, bound = entry, entry.rank
        if self.pathless.entries:
            entry = self.pathless.first(
                bound, None, method, hostname, port, headers, sni, check_host
            )
            if entry is not None:
                found = entry
        return found


class HostIndex(Generic[T]):
    """Path indexes by host: exact names, wildcard suffixes/prefixes, and hostless."""

    __slots__ = ("exact", "hostless", "prefix", "suffix", "unindexed")

    def __init__(self, entries: list[Entry[T]]) -> None:
        self.exact: dict[HostKey, PathIndex[T]] = {}
        self.suffix: dict[HostKey, PathIndex[T]] = {}
        self.prefix: dict[HostKey, PathIndex[T]] = {}
        self.hostless: PathIndex[T] = PathIndex()
        unindexed: PathIndex[T] = PathIndex(check_host=True)
        for entry in entries:  # in rank order, so every list below is too
            if not entry.hosts:
                self.hostless.add(entry)
                continue
            for host in entry.hosts:  # as ``_host_slots`` says, inline: this loop is hot
                key = (host.name, host.port)
                if host.kind == EXACT:
                    self.exact.setdefault(key, PathIndex()).add(entry)
                elif host.kind == SUFFIX and host.name.startswith("."):
                    self.suffix.setdefault(key, PathIndex()).add(entry)
                elif host.kind == PREFIX and host.name.endswith("."):
                    self.prefix.setdefault(key, PathIndex()).add(entry)
                else:
                    unindexed.add(entry)
        self.unindexed: PathIndex[T] | None = None if unindexed.is_empty() else unindexed
        for index in self._all():
            index.seal()

    def updated(self, gone: Iterable[Entry[T]], came: Iterable[Entry[T]]) -> HostIndex[T]:
        """The index without the entries ``gone`` and with those that ``came`` (ranked, and
        placed between the others by rank).  This index is left as it was."""
        changes: dict[HostSlot, tuple[list[Entry[T]], list[Entry[T]]]] = {}
        for entry in gone:
            for slot in _host_slots(entry):
                changes.setdefault(slot, ([], []))[0].append(entry)
        for entry in came:
            for slot in _host_slots(entry):
                changes.setdefault(slot, ([], []))[1].append(entry)
        new: HostIndex[T] = HostIndex([])
        new.hostless, new.unindexed = self.hostless, self.unindexed
        new.exact, new.suffix, new.prefix = self.exact, self.suffix, self.prefix
        copied: dict[str, dict[HostKey, PathIndex[T]]] = {}
        for (table_name, key), (gone_here, came_here) in changes.items():
            if table_name == "hostless":
                new.hostless = new.hostless.updated(gone_here, came_here)
            elif key is None:
                base = new.unindexed or PathIndex(check_host=True)
                unindexed = base.updated(gone_here, came_here)
                new.unindexed = None if unindexed.is_empty() else unindexed
            else:
                table = copied.get(table_name)
                if table is None:
                    table = copied[table_name] = dict(getattr(self, table_name))
                    setattr(new, table_name, table)
                index = (table.get(key) or PathIndex()).updated(gone_here, came_here)
                if index.is_empty():
                    table.pop(key, None)
                else:
                    table[key] = index
        return new

    def _all(self) -> Iterator[PathIndex[T]]:
        yield self.hostless
        if self.unindexed is not None:
            yield self.unindexed
        for table in (self.exact, self.suffix, self.prefix):
            yield from table.values()

    def indexes_for(self, hostname: str, port: int | None) -> list[PathIndex[T]]:
        """The path indexes whose host key the request's host satisfies."""
        found: list[PathIndex[T]] = []
        if self.exact:
            index = self.exact.get((hostname, None))
            if index is not None:
                found.append(index)
            if port is not None:
                index = self.exact.get((hostname, port))
                if index is not None:
                    found.append(index)
        if self.unindexed is not None:
            found.append(self.unindexed)
        suffix, prefix = self.suffix, self.prefix
        if suffix or prefix:
            position = hostname.find(".")
            while position != -1:
                if suffix:
                    _probe(suffix, hostname[position:], port, found)
                if prefix:
                    _probe(prefix, hostname[: position + 1], port, found)
                position = hostname.find(".", position + 1)
        found.append(self.hostless)
        return found


def _probe(
    table: dict[HostKey, PathIndex[T]], name: str, port: int | None, found: list[PathIndex[T]]
) -> None:
    index = table.get((name, None))
    if index is not None:
        found.append(index)
    if port is not None:
        index = table.get((name, port))
        if index is not None:
            found.append(index)


def _key_lengths(
    table: Mapping[str, object], old_lengths: list[int], added: set[int], removed: set[int]
) -> list[int]:
    """The distinct key lengths of ``table``, ascending, after keys of the ``added`` lengths
    were added and keys of the ``removed`` lengths removed: a removed length is kept if some
    key still has it (looked for until one is found, not in every key)."""
    lengths = set(old_lengths) | added
    for length in removed - added:
        if not any(len(key) == length for key in table):
            lengths.discard(length)
    return sorted(lengths)


def _group_key(entry: Entry[T]) -> GroupKey:
    if entry.prefix is not None:
        return _PREFIX_GROUP, entry.prefix
    if entry.regex is not None and entry.regex_literal:
        return _REGEX_PREFIX_GROUP, entry.regex_literal
    if entry.regex is not None:
        return _REGEX_GROUP, ""
    return _PATHLESS_GROUP, ""


def _host_slots(entry: Entry[T]) -> Iterator[HostSlot]:
    """The host buckets an entry belongs in (the same one twice for two equal host keys)."""
    if not entry.hosts:
        yield "hostless", None
        return
    for host in entry.hosts:
        key = (host.name, host.port)
        if host.kind == EXACT:
            yield "exact", key
        elif host.kind == SUFFIX and host.name.startswith("."):
            yield "suffix", key
        elif host.kind == PREFIX and host.name.endswith("."):
            yield "prefix", key
        else:  # a wildcard not on a label boundary ("*example.com"): scanned
            yield "unindexed", None
