"""Partitioning: murmur2 for keyed records (the Java client's exact hash), sticky for the rest.

A keyed record goes to ``to_positive(murmur2(key)) % num_partitions``, the formula of Kafka's
``BuiltInPartitioner.partitionForKey``, so a key lands on the same partition whether a Java,
librdkafka (``murmur2_random``) or rillet producer sends it. Records without a key stick to one
partition per topic until the batch they fill is complete, then move to another partition
(KIP-480): large batches, fewer requests, an even spread over time.
"""

from __future__ import annotations

import random
import struct

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: 32-bit MurmurHash2 (seed 0x9747b28c) as a signed Java int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length >> 2
    if n4:
        for k in struct.unpack_from(f"<{n4}I", data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            k = (k * _M) & _MASK
            h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    base = length & ~3
    if tail == 3:
        h ^= data[base + 2] << 16
    if tail >= 2:
        h ^= data[base + 1] << 8
    if tail >= 1:
        h ^= data[base]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (not abs())."""
    return n & 0x7FFFFFFF


def partition_for_key(key: bytes, num_partitions: int) -> int:
    return to_positive(murmur2(key)) % num_partitions


class KeyPartitioner:
    """``partition_for_key`` with a bounded cache: real workloads repeat keys, and the hash is
    pure Python. Not thread-safe by design; a lost race only recomputes an entry."""

    __slots__ = ("_cache", "_limit")

    def __init__(self, limit: int = 65536) -> None:
        self._cache: dict[tuple[bytes, int], int] = {}
        self._limit = limit

    def __call__(self, key: bytes, num_partitions: int) -> int:
        entry = (key, num_partitions)
        p = self._cache.get(entry)
        if p is None:
            p = to_positive(murmur2(key)) % num_partitions
            if len(self._cache) >= self._limit:
                self._cache.clear()
            self._cache[entry] = p
        return p


class StickyPartitioner:
    """The current partition of each topic for records without a key.

    ``partition(topic, n)`` returns the sticky choice; ``on_batch_complete(topic, p)`` moves it
    to another partition (chosen by the seeded ``rng``) once the batch on ``p`` is full or sent.
    """

    __slots__ = ("_current", "_rng")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._current: dict[str, int] = {}
        self._rng = rng or random.Random()

    def partition(self, topic: str, num_partitions: int) -> int:
        p = self._current.get(topic)
        if p is None or p >= num_partitions:
            p = self._rng.randrange(num_partitions)
            self._current[topic] = p
        return p

    def on_batch_complete(self, topic: str, partition: int, num_partitions: int) -> None:
        if self._current.get(topic) != partition:
            return
        if num_partitions <= 1:
            return
        p = self._rng.randrange(num_partitions - 1)
        self._current[topic] = p if p < partition else p + 1
