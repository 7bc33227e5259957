"""Kafka's default partitioner: murmur2 vectors from the Java client and librdkafka agreement."""

from __future__ import annotations

import random

import confluent_kafka
import pytest

from meshgate.events.partitioner import (
    StickyPartitioner,
    choose_partitions,
    murmur2,
    partition_for_key,
)

# Utils.murmur2 results pinned by the Java client's own unit tests
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS.items())
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_for_key_agrees_with_librdkafka_murmur2() -> None:
    generator = random.Random(7)
    for _ in range(2000):
        key = generator.randbytes(generator.randrange(0, 40))
        partitions = generator.randrange(1, 64)
        assert partition_for_key(key, partitions) == confluent_kafka.murmur2(key, partitions)


def test_explicit_partition_wins_and_keyless_records_share_one_partition() -> None:
    sticky = StickyPartitioner()
    assert choose_partitions([b"a", None], 4, 3, sticky) == [3, 3]
    keys: list[bytes | None] = [None, b"user-1", None]
    first = choose_partitions(keys, 4, None, sticky)
    second = choose_partitions(keys, 4, None, sticky)
    assert first[0] == first[2]
    assert first[1] == partition_for_key(b"user-1", 4) == second[1]
    assert second[0] == second[2] == (first[0] + 1) % 4
