"""Kafka's default partitioner: murmur2 of the key for keyed records, sticky for keyless ones.

``murmur2`` is the 32-bit MurmurHash2 variant the Java client uses (seed 0x9747b28c), so a key
lands in the same partition number here, in the Java producer and in librdkafka's
``murmur2_random`` partitioner (kcat ``-X partitioner=murmur2_random``).
"""

from __future__ import annotations

import itertools

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The Java client's ``Utils.murmur2``, returned as a signed 32-bit int like Java's."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = (h * _M) & _MASK32
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """``toPositive(murmur2(key)) % partitions`` — the Java default for keyed records."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class StickyPartitioner:
    """Keyless records: one partition per produce call, round-robin across calls."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next_partition(self, partitions: int) -> int:
        return next(self._counter) % partitions


def choose_partitions(
    keys: list[bytes | None], partitions: int, explicit: int | None, sticky: StickyPartitioner
) -> list[int]:
    """The partition of each record of one produce call, in order."""
    if explicit is not None:
        return [explicit] * len(keys)
    if keys and keys.count(None) == len(keys):  # the usual keyless batch, without a loop
        return [sticky.next_partition(partitions)] * len(keys)
    keyless_partition: int | None = None
    chosen: list[int] = []
    for key in keys:
        if key is not None:
            chosen.append(partition_for_key(key, partitions))
            continue
        if keyless_partition is None:
            keyless_partition = sticky.next_partition(partitions)
        chosen.append(keyless_partition)
    return chosen
