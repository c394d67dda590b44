"""The extra reads interactive queries offer on top of the processors' API."""

from __future__ import annotations

import pytest

from .stores_support import opened

BACKENDS = ["memory", "sqlite"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_query_helpers_reverse_and_prefix_scans(backend):
    """The extra reads interactive queries offer (Kafka's reverseAll, reverseRange,
    prefixScan, backwardFetch)."""
    kv = opened("kv", backend)
    for key in ("a", "ab", "abc", "b", "ba"):
        kv.put(key, len(key))
    assert [k for k, _ in kv.reverse_all()] == ["ba", "b", "abc", "ab", "a"]
    assert [k for k, _ in kv.reverse_range("ab", "b")] == ["b", "abc", "ab"]
    assert list(kv.prefix_scan("ab")) == [("ab", 2), ("abc", 3)]
    assert list(kv.prefix_scan("c")) == []
    win = opened("window", backend)
    for start in (0, 10, 20):
        win.put("k", start, start)
    assert list(win.backward_fetch("k", 5, 20)) == [(20, 20), (10, 10)]
