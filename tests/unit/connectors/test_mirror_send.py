"""The mirror's copies go out through ``send_many`` (one future per batch written, plus each
batch's index of the run's first record); ``downstream_offsets`` turns those into the target
offset of any record of the run, for the offset syncs, and checks every batch first, so a
failed batch is never committed as progress (connectors/mirror/runner.py)."""

from __future__ import annotations

import pytest
from rillet.connectors.mirror.runner import downstream_offsets

from rillet._future import BatchCompletion, new_future
from rillet.errors import DeliveryTimeoutError


def _batch(base: int | None, error: BaseException | None = None) -> BatchCompletion:
    c = BatchCompletion("A.orders", 0)
    c.complete(-1 if base is None else base, error)
    return c


def test_first_last_and_middle_offsets_come_from_the_batches():
    # the run's 12 records: 7 appended to a batch that already held 3 (indices 3..9, base
    # 100: offsets 103..109), then a fresh batch of 5 (base 110: 110..114)
    b1, b2 = _batch(100), _batch(110)
    futs = [new_future((b1, 9, 0)), new_future((b2, 4, 0))]
    downstream = downstream_offsets(futs, [3, 0], 12)
    assert downstream(0) == 103
    assert downstream(11) == 114
    assert [downstream(i) for i in range(12)] == list(range(103, 115))


def test_a_gap_between_batches_is_seen_record_by_record():
    # another writer's records between the two batches: 103..109, then 120..124
    futs = [new_future((_batch(100), 9, 0)), new_future((_batch(120), 4, 0))]
    downstream = downstream_offsets(futs, [3, 0], 12)
    assert downstream(11) - downstream(0) != 11  # the syncs' contiguity check sees it
    assert [downstream(i) for i in range(12)] == [*range(103, 110), *range(120, 125)]


def test_a_failed_batch_in_the_middle_raises_its_error():
    err = DeliveryTimeoutError("gone")
    futs = [new_future((_batch(0), 9, 0)), new_future((_batch(None, err), 9, 0)),
            new_future((_batch(20), 9, 0))]
    with pytest.raises(DeliveryTimeoutError):
        downstream_offsets(futs, [0, 0, 0], 30)


def test_a_count_that_does_not_match_the_batches_is_refused():
    with pytest.raises(RuntimeError, match="12 records sent but the batches hold 7"):
        downstream_offsets([new_future((_batch(100), 9, 0))], [3], 12)
