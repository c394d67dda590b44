"""Appending a produce request with the idempotence checks (logstore/validator.py)."""

from __future__ import annotations

import pytest
from rillet.logstore.batch import BatchBuilder
from rillet.logstore.config import LogConfig
from rillet.logstore.log import PartitionLog
from rillet.logstore.producer_state import ProducerStateManager
from rillet.logstore.validator import append_validated

NOW = 1_700_000_000_000


def batch(seq: int, n: int = 1, pid: int = 7, epoch: int = 1, size: int = 1, **kw) -> bytes:
    b = BatchBuilder(producer_id=pid, producer_epoch=epoch, base_sequence=seq, **kw)
    for i in range(n):
        b.append(NOW, None, b"v" * size + bytes([i]))
    return b.build()


@pytest.fixture
def log(tmp_path):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(max_message_bytes=500), NOW)
    yield log
    log.close()


def append(log, producers, *batches):
    return append_validated(log, producers, b"".join(batches), 0, NOW)


def test_a_retried_request_is_answered_with_its_original_offsets(log) -> None:
    ps = ProducerStateManager()
    first = append(log, ps, batch(0, 3), batch(3, 2))
    assert (first.error, first.base_offset, first.last_offset) == ("NONE", 0, 4)
    again = append(log, ps, batch(0, 3), batch(3, 2))
    assert (again.base_offset, again.last_offset) == (0, 4) and again.duplicate is not None
    assert log.log_end_offset == 5  # nothing written twice
    # a retry with new batches after it: the duplicates lead, the new batch is written
    more = append(log, ps, batch(3, 2), batch(5, 1))
    assert (more.error, more.base_offset, more.last_offset, more.duplicate) == ("NONE", 3, 5, None)
    assert log.log_end_offset == 6


def test_refusals_write_nothing(log) -> None:
    ps = ProducerStateManager()
    append(log, ps, batch(0, 2))
    cases = [
        ((batch(5),), "OUT_OF_ORDER_SEQUENCE_NUMBER"),
        ((batch(2), batch(0, 2)), "DUPLICATE_SEQUENCE_NUMBER"),  # a duplicate after a new one
        ((batch(2, epoch=0),), "INVALID_PRODUCER_EPOCH"),
        ((batch(4, pid=99),), "UNKNOWN_PRODUCER_ID"),
        ((batch(2, is_control=True),), "INVALID_RECORD"),
        ((batch(2, size=600),), "MESSAGE_TOO_LARGE"),
        ((b"",), "CORRUPT_MESSAGE"),
    ]
    for batches, error in cases:
        r = append(log, ps, *batches)
        assert r.error == error, (error, r)
        assert log.log_end_offset == 2
    assert append(log, ps, batch(2)).error == "NONE"


def test_non_idempotent_batches_only_move_the_state_end(log) -> None:
    ps = ProducerStateManager()
    r = append(log, ps, batch(-1, 4, pid=-1, epoch=-1))
    assert (r.error, r.base_offset, r.last_offset) == ("NONE", 0, 3)
    assert ps.map_end_offset == 4 and not ps.producers


def test_a_compacted_topic_refuses_keyless_records_and_writes_nothing(tmp_path) -> None:
    """Kafka's rule (LogValidator): INVALID_RECORD, "Compacted topic cannot accept message
    without key", for the whole request, compressed batches included."""
    from rillet.logstore.batch import Codec

    log = PartitionLog.open(tmp_path / "c-0", LogConfig(cleanup_policy="compact,delete"), NOW)
    ps = ProducerStateManager()

    def keyed(*keys, codec=Codec.NONE) -> bytes:
        b = BatchBuilder(codec)
        for k in keys:
            b.append(NOW, k, b"v")
        return b.build()

    assert append(log, ps, keyed(b"a", b"b")).error == "NONE"
    for batches in [(keyed(b"a", None),), (keyed(b"a"), keyed(None)),
                    (keyed(b"x", None, codec=Codec.GZIP),)]:
        r = append(log, ps, *batches)
        assert (r.error, r.message) == (
            "INVALID_RECORD", "Compacted topic cannot accept message without key"), r
    assert log.log_end_offset == 2
    assert append(log, ps, keyed(b"c", codec=Codec.GZIP)).error == "NONE"
    log.close()
    # a topic without compaction takes keyless records as before
    plain = PartitionLog.open(tmp_path / "d-0", LogConfig(), NOW)
    assert append(plain, ProducerStateManager(), keyed(None)).error == "NONE"
    plain.close()
