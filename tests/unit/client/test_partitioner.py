"""murmur2 matches the Java client byte for byte; sticky partitioning moves on batch completion."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rillet._partitioner import (
    KeyPartitioner,
    StickyPartitioner,
    murmur2,
    partition_for_key,
    to_positive,
)

# apache/kafka clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java testMurmur2
JAVA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS)
def test_murmur2_matches_kafka_utils_test(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_is_to_positive_not_abs() -> None:
    # -973932308 & 0x7fffffff = 1173551340; abs() would give 973932308
    assert to_positive(-973932308) == 1173551340
    assert partition_for_key(b"21", 7) == 1173551340 % 7


def test_high_bytes_are_unsigned_in_the_tail() -> None:
    # Java masks each byte with 0xff; a sign-extension bug shows on bytes >= 0x80
    assert murmur2(b"\xff") != murmur2(b"\x7f")
    assert -(2**31) <= murmur2(b"\xff\xfe\xfd") < 2**31


@given(st.binary(max_size=64), st.integers(1, 1000))
def test_cached_partitioner_agrees(key: bytes, n: int) -> None:
    kp = KeyPartitioner(limit=4)
    assert kp(key, n) == kp(key, n) == partition_for_key(key, n)
    assert 0 <= kp(key, n) < n


def test_sticky_stays_until_the_batch_completes() -> None:
    sp = StickyPartitioner(random.Random(1))
    first = sp.partition("t", 6)
    assert all(sp.partition("t", 6) == first for _ in range(100))
    sp.on_batch_complete("t", (first + 1) % 6, 6)  # another partition's batch: no move
    assert sp.partition("t", 6) == first
    sp.on_batch_complete("t", first, 6)
    assert sp.partition("t", 6) != first


def test_sticky_spreads_over_all_partitions() -> None:
    sp = StickyPartitioner(random.Random(7))
    seen = set()
    for _ in range(200):
        p = sp.partition("t", 4)
        seen.add(p)
        sp.on_batch_complete("t", p, 4)
    assert seen == {0, 1, 2, 3}


def test_sticky_single_partition_and_shrunk_metadata() -> None:
    sp = StickyPartitioner(random.Random(3))
    assert sp.partition("t", 1) == 0
    sp.on_batch_complete("t", 0, 1)
    assert sp.partition("t", 1) == 0
    sp._current["u"] = 9
    assert sp.partition("u", 3) in (0, 1, 2)
