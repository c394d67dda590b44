"""rillet perf produce: the unthrottled loop sends the same records and samples as the simple one."""

from __future__ import annotations

import pytest

from rillet.cli.perf import _Bar, _produce_unthrottled, _Stats


@pytest.mark.parametrize("n, sample, key_count", [
    (1, 50, 0), (2, 50, 0), (50, 50, 0), (51, 50, 0), (1000, 50, 3), (2503, 7, 0), (10, 1, 4),
    (99, 100, 0),
])
def test_same_records_and_samples_as_the_simple_loop(n, sample, key_count) -> None:
    keys = [b"k%d" % i for i in range(key_count)] or None
    calls = []

    def send(topic, value, key=None, on_delivery=None):
        calls.append((topic, value, key, on_delivery is not None))

    stats = _Stats(3, report_s=1e9)
    bar = _Bar(n, "x")
    _produce_unthrottled(send, "t", b"abc", keys, n, sample, stats, bar)
    want = [("t", b"abc", keys[i % key_count] if keys else None,
             i % sample == 0 or i == n - 1) for i in range(n)]
    assert calls == want


def test_consumed_bytes_count_non_null_keys_and_values() -> None:
    from rillet.cli.perf import _payload_bytes
    from rillet.records import ConsumerRecord

    def rec(key, value):
        return ConsumerRecord("t", 0, 0, 0, key, value)

    assert _payload_bytes([rec(None, b"abc"), rec(None, b"de")]) == 5
    assert _payload_bytes([rec(b"k", b"abc"), rec(None, None), rec(b"", b"")]) == 4
    assert _payload_bytes([rec(b"kk", None), rec(b"k", b"v" * 10)]) == 13
    assert _payload_bytes([]) == 0
