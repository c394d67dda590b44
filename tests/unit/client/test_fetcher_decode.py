"""Fetcher._decode: the fast column path and the cbor2 path give the same ConsumerRecords."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import BatchBuilder, Codec, decode_records, iter_batches, stamp
from rillet.logstore.batch_fast import scan_batches
from rillet.logstore.errors import CorruptBatchError

from rillet._accumulator import ProducerBatch
from rillet._fetcher import Fetcher
from rillet.config import consumer_config
from rillet.records import ConsumerRecord, TopicPartition
from tests.support import examples

TP = TopicPartition("t", 3)


def _fetcher(**cfg) -> Fetcher:
    return Fetcher(client=None, config=consumer_config({"bootstrap.servers": "x:1", **cfg}))


def _log(batches: list[bytes], base: int = 100) -> bytes:
    """Concatenate batches as a broker returns them (offsets stamped)."""
    buf = bytearray()
    for data in batches:
        pos = len(buf)
        buf += data
        stamp(buf, pos, base, 0)
        base += decode_records(data, validate=False)[-1].offset + 1
    return bytes(buf)


def _decode(fetcher: Fetcher, log: bytes) -> list[ConsumerRecord]:
    from rillet._fetcher import PartitionState, _Chunk

    chunk = _Chunk(log, scan_batches(log, 0, True)[0])
    records = fetcher._decode(PartitionState(TP), chunk)
    assert chunk.error is None
    return records


def _expected(log: bytes) -> list[ConsumerRecord]:
    out = []
    for _h, mv in iter_batches(log):
        for r in decode_records(mv):
            out.append(ConsumerRecord(TP.topic, TP.partition, r.offset, r.timestamp, r.key,
                                      r.value, r.headers))
    return out


record = st.tuples(st.integers(0, 40), st.none() | st.binary(max_size=8),
                   st.none() | st.binary(max_size=50),
                   st.lists(st.tuples(st.text(max_size=3), st.none() | st.binary(max_size=3)),
                            max_size=1))


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.lists(record, min_size=1, max_size=40), min_size=1, max_size=4),
       st.sampled_from([Codec.NONE, Codec.GZIP]), st.booleans())
def test_decode_equals_the_logstore_reader(batches, codec, producer_shape) -> None:
    encoded = []
    for records in batches:
        b = ProducerBatch("t", 3, codec, 0) if producer_shape else BatchBuilder(codec)
        for dt, key, value, headers in records:
            b.append(1_700_000_000_000 + dt, key, value, headers)
        encoded.append(b.seal() if producer_shape else b.build())
    log = _log(encoded)
    got = _decode(_fetcher(), log)
    assert got == _expected(log)
    assert all(isinstance(r, ConsumerRecord) for r in got)


def test_fast_shape_records_and_deserializers() -> None:
    b = ProducerBatch("t", 3, Codec.NONE, 0)
    for i in range(300):
        b.append(1_700_000_000_000 + i // 20, None, b"%03d" % i + b"x" * 97)
    log = _log([b.seal()], base=7)
    got = _decode(_fetcher(), log)
    assert got == _expected(log)
    assert [r.offset for r in got] == list(range(7, 307))
    assert got[299].timestamp == 1_700_000_000_014 and got[0].headers == ()
    fetcher = _fetcher(value_deserializer=lambda v: v[:3].decode(),
                       key_deserializer=lambda k: 1 / 0)  # never called: null keys
    got = _decode(fetcher, log)
    assert [r.value for r in got[:3]] == ["000", "001", "002"]


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_state_is_restored(enabled) -> None:
    b = ProducerBatch("t", 3, Codec.NONE, 0)
    b.append(5, None, b"v")
    log = _log([b.seal()])
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        _decode(_fetcher(), log)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_records_skip_young_collections_but_app_freeze_is_respected() -> None:
    b = ProducerBatch("t", 3, Codec.NONE, 0)
    for i in range(2000):
        b.append(5, None, b"v%d" % i)
    log = _log([b.seal()])
    assert gc.get_freeze_count() == 0
    got = _decode(_fetcher(), log)
    assert len(got) == 2000 and gc.get_freeze_count() == 0 and gc.isenabled()
    assert gc.get_count()[0] < 700  # the records did not land in the young generation
    keep = [object() for _ in range(10)]  # an application that froze its objects
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert _decode(_fetcher(), log) == got
        assert gc.get_freeze_count() == frozen  # left as the application set it
    finally:
        gc.unfreeze()
    del keep


def _batch(values, control: bool = False) -> bytes:
    b = BatchBuilder(Codec.NONE, is_control=control)
    for v in values:
        b.append(7, None, v)
    return b.build()


def test_scan_skips_old_and_control_batches_and_advances_past_them() -> None:
    log = _log([_batch([b"a", b"b"]), _batch([b"c"]), _batch([b"x"], control=True),
                _batch([b"d", b"e"]), _batch([b"y"], control=True)], base=10)
    batches, next_offset = scan_batches(log, 11, True)  # offset 11 is in the first batch
    assert [(b[0], b[4]) for b in batches] == [(10, 2), (12, 1), (14, 2)]
    assert next_offset == 17  # past the trailing control batch: it is not fetched again
    assert scan_batches(log, 12, False)[0][0][0] == 12
    assert scan_batches(log, 17, True) == ([], 17)
    records = _decode(_fetcher(), log)
    assert [(r.offset, r.value) for r in records] == [
        (10, b"a"), (11, b"b"), (12, b"c"), (14, b"d"), (15, b"e")]


def test_scan_rejects_corrupt_and_truncated_batches() -> None:
    log = bytearray(_log([_batch([b"a" * 20]), _batch([b"b" * 20])]))
    first_len = int.from_bytes(log[8:12], "big")
    with pytest.raises(CorruptBatchError):
        scan_batches(bytes(log[:-1]), 0, False)  # truncated
    with pytest.raises(CorruptBatchError):
        scan_batches(bytes(log[:first_len + 10]), 0, True)  # truncated header
    log[first_len + 100] ^= 1  # a payload byte of the second batch
    assert len(scan_batches(bytes(log), 0, False)[0]) == 2  # check.crcs=false: not noticed
    with pytest.raises(CorruptBatchError) as info:
        scan_batches(bytes(log), 0, True)
    assert info.value.position == first_len


@pytest.mark.parametrize("deltas", [[0] * 5, [7], [3, 3, 5, 5, 5], [1, 1, 0, 0], [5, 3],
                                    [0, 1, 0], [0, 0, 1, 1, 0], [1, 2, 3], [23, 0, 23]])
def test_timestamps_from_deltas(deltas) -> None:
    from itertools import chain

    from rillet._fetcher import _add_timestamps

    out: list = []
    _add_timestamps(out, 1_700_000_000_000, bytes(deltas), len(deltas))
    assert list(chain.from_iterable(out)) == [1_700_000_000_000 + d for d in deltas]


@pytest.mark.parametrize("check_crcs", [True, False])
def test_a_corrupt_batch_is_reported_after_the_records_before_it(check_crcs) -> None:
    from rillet.errors import CorruptMessageError

    log = bytearray(_log([_batch([b"a" * 20]), _batch([b"b" * 20]), _batch([b"c" * 20])],
                         base=100))
    first_len = int.from_bytes(log[8:12], "big")
    log[first_len + 100] ^= 1  # a payload byte of the second batch (offset 101)
    fetcher = _fetcher(**{"check.crcs": check_crcs})
    fetcher._backoff = lambda tps, refresh: None  # no client to refresh metadata with
    fetcher.assign([TP])
    state = fetcher.states[TP]
    state.seek(100)
    fetcher._buffer(state, bytes(log))  # framing is checked here, digests when decoded
    if not check_crcs:  # check.crcs=false: the digest is not looked at
        assert [r.offset for r in fetcher._drain(10)[TP]] == [100, 101, 102]
        return
    # the poll returns the good record before the corrupt batch ...
    assert [r.offset for r in fetcher._drain(10)[TP]] == [100]
    assert state.position == 101 and state.fetch_offset == 101  # fetched again from there
    # ... the next poll that has nothing else reports it, once
    with pytest.raises(CorruptMessageError, match="offset 101"):
        fetcher._drain(10)
    assert fetcher._drain(10) == {}
    assert state.position == 101  # nothing skipped: a healthy replica's answer goes on
    good = _log([_batch([b"b" * 20]), _batch([b"c" * 20])], base=101)
    fetcher._buffer(state, good)
    assert [r.offset for r in fetcher._drain(10)[TP]] == [101, 102]


def test_bad_framing_ends_the_chunk_at_the_batch_before_it() -> None:
    from rillet.errors import CorruptMessageError

    log = bytearray(_log([_batch([b"a"]), _batch([b"b"]), _batch([b"c"])], base=7))
    first_len = int.from_bytes(log[8:12], "big")
    log[first_len + 16] = 0  # the magic of the second batch
    fetcher = _fetcher()
    fetcher._backoff = lambda tps, refresh: None
    fetcher.assign([TP, TopicPartition("t", 4)])
    state = fetcher.states[TP]
    state.seek(7)
    fetcher._buffer(state, bytes(log))
    assert state.fetch_offset == 8
    assert [r.offset for r in fetcher._drain(10)[TP]] == [7]
    with pytest.raises(CorruptMessageError, match="t-3 at offset 8: .*bad magic"):
        fetcher._drain(10)
    # a response that is corrupt from its first byte: reported, position unchanged
    fetcher._buffer(state, bytes(log[first_len:]))
    with pytest.raises(CorruptMessageError):
        fetcher._drain(10)
    assert state.position == 8
