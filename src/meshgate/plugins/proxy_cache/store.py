"""proxy-cache's memory strategy and cache keys.

``MemoryCache``: one per dictionary name per worker process (a node resource, so it survives
config reloads); an LRU over entries with a byte budget — inserting past the budget evicts the
least recently used entries; an entry larger than a quarter of the budget is not stored.
Entries past their storage TTL are dropped when looked up.  Budget per dictionary:
``MESHGATE_PROXY_CACHE_BYTES`` (default 64 MiB).

``cache_key``: Kong's recipe — sha256 hex of ``prefix|method|path|params|headers`` where the
prefix is ``consumer:route``, ``route`` or ``default``, params are the (chosen) query args
sorted by name, headers the ``vary_headers`` present.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_BUDGET = 64 * 1024 * 1024
_ENTRY_OVERHEAD = 256


def budget_from_env() -> int:
    try:
        return max(1024, int(os.environ.get("MESHGATE_PROXY_CACHE_BYTES", DEFAULT_BUDGET)))
    except ValueError:
        return DEFAULT_BUDGET


@dataclass(slots=True)
class Entry:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    timestamp: float  # when it was stored (epoch seconds)
    ttl: float  # freshness lifetime of the resource
    expires: float  # when storage forgets it
    size: int = 0


class MemoryCache:
    """A byte-bounded LRU of ``Entry``s."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget if budget is not None else budget_from_env()
        self.max_entry = self.budget // 4
        self.used = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            self.purge(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> bool:
        entry.size = (
            len(entry.body) + sum(len(n) + len(v) for n, v in entry.headers) + _ENTRY_OVERHEAD
        )
        if entry.size > self.max_entry:
            return False
        self.purge(key)
        while self._entries and self.used + entry.size > self.budget:
            _, evicted = self._entries.popitem(last=False)
            self.used -= evicted.size
        self._entries[key] = entry
        self.used += entry.size
        return True

    def purge(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.used -= entry.size

    def flush(self) -> None:
        self._entries.clear()
        self.used = 0


def _fields(args: Mapping[str, Sequence[str]], names: Sequence[str]) -> str:
    parts = []
    for name in names:
        values = args.get(name)
        if values is None:
            continue
        if len(values) == 1:
            parts.append(f"{name}={values[0]}")
        else:
            parts.append(f"{name}={','.join(sorted(values))}")
    return ":".join(parts)


def cache_key(
    consumer_id: str | None,
    route_id: str | None,
    method: str,
    path: str,
    query: Mapping[str, Sequence[str]],
    headers: Mapping[str, Sequence[str]],
    vary_query_params: Sequence[str] | None,
    vary_headers: Sequence[str] | None,
) -> str:
    prefix = f"{consumer_id}:{route_id}" if consumer_id and route_id else route_id or "default"
    params = _fields(query, vary_query_params or sorted(query))
    header_part = ""
    if vary_headers:
        lowered = {name: headers.get(name.lower(), ()) for name in vary_headers}
        header_part = _fields({k: v for k, v in lowered.items() if v}, vary_headers)
    raw = f"{prefix}|{method}|{path}|{params}|{header_part}"
    return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()
