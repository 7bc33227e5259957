"""Consistent hashing: a table of ``slots`` slots and the request values hashed onto it.

As in Kong, the "ring" is a wheel of ``cluster.slots`` slots shared among targets by weight;
a request value hashes to a slot and the slot's owner serves it.  Each slot is owned by the
target that wins weighted rendezvous hashing for it (lowest ``-ln(u) / weight`` with ``u``
drawn from a per-target seeded stream), which gives:

* ownership shares proportional to weight;
* minimal disruption: removing a target moves only its own slots, adding one takes only its
  share; no other slot changes owner;
* determinism: seeds come from md5 of the target's address and ``random.Random(seed).random()``
  is guaranteed stable across Python versions, so every worker process and every balancer
  rebuilt from the same cluster agree (``hash()`` is salted per process and never used).

Unhealthy targets keep their slots and are walked past (to the next slot's owner), which keeps
the layout.  The value hashed is ``hash_on``'s, else ``hash_fallback``'s; with neither present
the pick falls back to weighted round-robin.  ``hash_on: cookie`` never misses: a cookie holding
a new UUID is set on the response and hashed.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
import zlib
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from meshgate.proxy.balancer.pickers import RoundRobin
from meshgate.proxy.balancer.target import PickRequest, Target

if TYPE_CHECKING:
    from meshgate import snapshot

Extractor = Callable[[PickRequest], "str | None"]


def key_hash(value: str) -> int:
    """The hash of a request value (stable across processes, unlike ``hash()``)."""
    return zlib.crc32(value.encode())


def build_slot_table(targets: Sequence[Target], slots: int) -> list[Target]:
    """The owner of each of ``slots`` slots (targets all have weight > 0)."""
    ordered = sorted(targets, key=lambda t: t.label)
    signature = (slots, tuple((t.label, t.weight) for t in ordered))
    owners = _TABLE_CACHE.get(signature)
    if owners is None:
        owners = _rendezvous(ordered, slots)
        if len(_TABLE_CACHE) >= _TABLE_CACHE_SIZE:
            _TABLE_CACHE.pop(next(iter(_TABLE_CACHE)))
        _TABLE_CACHE[signature] = owners
    return [ordered[index] for index in owners]


# Reloads rebuild every balancer; an unchanged target set reuses its table.
_TABLE_CACHE: dict[tuple[int, tuple[tuple[str, int], ...]], list[int]] = {}
_TABLE_CACHE_SIZE = 256


def _rendezvous(ordered: Sequence[Target], slots: int) -> list[int]:
    best = [math.inf] * slots
    owners = [0] * slots
    log = math.log
    for index, t in enumerate(ordered):
        digest = hashlib.md5(t.label.encode(), usedforsecurity=False).digest()
        stream = random.Random(int.from_bytes(digest[:8], "big")).random
        inverse_weight = 1.0 / t.weight
        for slot in range(slots):
            score = -log(1.0 - stream()) * inverse_weight
            if score < best[slot]:
                best[slot] = score
                owners[slot] = index
    return owners


def query_arg(query: str, name: str) -> str | None:
    """The first value of query argument ``name`` (decoded), or None."""
    if not query:
        return None
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == name or (("%" in key or "+" in key) and unquote_plus(key) == name):
            return unquote_plus(value)
    return None


def make_extractor(cluster: snapshot.Cluster, fallback: bool) -> Extractor | None:
    """How to read ``hash_on`` (or ``hash_fallback``) from a request; None for ``none``."""
    kind = cluster.hash_fallback if fallback else cluster.hash_on
    if kind == "consumer":
        return lambda req: req.consumer_id
    if kind == "ip":
        return lambda req: req.client_ip
    if kind == "path":
        return lambda req: req.path
    if kind == "header":
        header = cluster.hash_fallback_header if fallback else cluster.hash_on_header
        if not header:
            return None
        header_name = header.lower()
        return lambda req: req.header(header_name)
    if kind == "query_arg":
        arg = cluster.hash_fallback_query_arg if fallback else cluster.hash_on_query_arg
        if not arg:
            return None
        arg_name = arg
        return lambda req: query_arg(req.query, arg_name)
    if kind == "uri_capture":
        capture = cluster.hash_fallback_uri_capture if fallback else cluster.hash_on_uri_capture
        if not capture:
            return None
        capture_name = capture
        return lambda req: req.uri_captures.get(capture_name)
    if kind == "cookie" and cluster.hash_on_cookie:
        return _cookie_extractor(cluster.hash_on_cookie, cluster.hash_on_cookie_path)
    return None


def _cookie_extractor(name: str, path: str) -> Extractor:
    def from_cookie(req: PickRequest) -> str:
        value = req.cookie(name)
        if not value:
            value = str(uuid.uuid4())
            req.set_response_cookie(name, value, path)
        return value

    return from_cookie


class ConsistentHashing:
    """Pick the owner of the request value's slot, or of the next slot owned by a healthy one."""

    def __init__(self, cluster: snapshot.Cluster) -> None:
        self._slots = cluster.slots
        self._primary = make_extractor(cluster, fallback=False)
        self._fallback = make_extractor(cluster, fallback=True)
        self.needs_request_data = self._primary is not None or self._fallback is not None
        self._owners: list[Target] = []
        self._round_robin = RoundRobin()

    def set_targets(self, targets: Sequence[Target]) -> None:
        self._owners = build_slot_table(targets, self._slots) if targets else []
        self._round_robin.set_targets(targets)

    def refresh_health(self) -> None:
        self._round_robin.refresh_health()

    def hash_value(self, req: PickRequest) -> str | None:
        """The request value to hash, or None when neither hash_on nor the fallback has one."""
        value = self._primary(req) if self._primary is not None else None
        if not value and self._fallback is not None:
            value = self._fallback(req)
        return value or None

    def pick(self, req: PickRequest | None, exclude: Collection[Target]) -> Target | None:
        value = self.hash_value(req) if req is not None else None
        if value is None:
            return self._round_robin.pick(req, exclude)
        owners = self._owners
        size = len(owners)
        if not size:
            return None
        start = key_hash(value) % size
        tried_fallback: Target | None = None
        for step in range(size):
            t = owners[(start + step) % size]
            if not t.healthy:
                continue
            if not (exclude and t in exclude):
                return t
            if tried_fallback is None:
                tried_fallback = t
        return tried_fallback
