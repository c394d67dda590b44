"""The append hot path: segment preallocation and its release, validate_fields."""

from __future__ import annotations

import os

import pytest
from rillet.logstore import fs as F
from rillet.logstore.batch import HEADER_SIZE, BatchHeader, iter_batches, validate, validate_fields
from rillet.logstore.errors import CorruptBatchError, RecordTooLargeError, StaleLeaderEpochError
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.segment import segment_name

from .helpers import NoSyncFS, make_batch, read_all, segment_files


class RecordingFS(NoSyncFS):
    """Counts preallocations; ``supported=False`` behaves like a filesystem without it."""

    def __init__(self, supported: bool = True) -> None:
        self.supported = supported
        self.calls: list[tuple[int, int]] = []
        self.reserved = False  # did the real filesystem reserve anything?

    def preallocate(self, fd: int, offset: int, length: int) -> bool:
        self.calls.append((offset, length))
        ok = super().preallocate(fd, offset, length) if self.supported else False
        self.reserved |= ok
        return ok


def _big_batch(i: int) -> bytes:
    return make_batch([os.urandom(4000) for _ in range(16)], ts=1_000 + i)  # ~64 KiB


def _allocated(path) -> int:
    return os.stat(path).st_blocks * 512


def _fill(log, n: int) -> list[bytes]:
    batches = [_big_batch(i) for i in range(n)]
    for b in batches:
        log.append(b, 0, 0)
    return batches


def test_a_busy_segment_preallocates_without_changing_its_size(tmp_path):
    fs = RecordingFS()
    log = PartitionLog.open(tmp_path, LogConfig(), 0, fs=fs)
    batches = _fill(log, 40)  # ~2.6 MB: past PREALLOCATE_AFTER
    assert fs.calls, "no preallocation for a segment past PREALLOCATE_AFTER"
    assert all(0 < length <= F.PREALLOCATE_MAX for _, length in fs.calls)
    path = tmp_path / segment_name(0)
    size = sum(len(b) for b in batches)
    assert os.path.getsize(path) == size == log.active_segment.size
    if fs.reserved:  # Linux with a filesystem that supports it (ext4, xfs, tmpfs)
        assert _allocated(path) > size + (512 << 10)
    assert len(read_all(log)) == 40 * 16
    log.close()
    # closing gives the reservation back: allocated space is the data, rounded to blocks
    assert _allocated(path) < size + (256 << 10)
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert log.log_end_offset == 40 * 16
    log.close()


def test_a_small_partition_never_preallocates(tmp_path):
    fs = RecordingFS()
    log = PartitionLog.open(tmp_path, LogConfig(), 0, fs=fs)
    for i in range(50):
        log.append(make_batch([b"x" * 100], ts=i), 0, 0)
    assert fs.calls == []
    log.close()


def test_rolling_releases_the_sealed_segments_reservation(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=3 << 20), 0, fs=RecordingFS())
    _fill(log, 80)  # ~5.2 MB: at least one roll
    assert len(log.segments) >= 2
    sealed = segment_files(tmp_path)[0]
    assert _allocated(sealed) < os.path.getsize(sealed) + (256 << 10)
    log.close()


def test_recovery_after_a_crash_releases_the_reservation(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(), 0, fs=RecordingFS())
    _fill(log, 40)
    log.flush()
    log.abandon()  # a crash: no clean shutdown
    path = tmp_path / segment_name(0)
    size = os.path.getsize(path)
    log = PartitionLog.open(tmp_path, LogConfig(), 0)
    assert log.log_end_offset == 40 * 16
    assert os.path.getsize(path) == size
    assert _allocated(path) < size + (256 << 10)
    log.close()


def test_without_preallocation_appends_work_the_same(tmp_path):
    fs = RecordingFS(supported=False)
    log = PartitionLog.open(tmp_path, LogConfig(), 0, fs=fs)
    _fill(log, 40)
    assert len(fs.calls) == 1  # tried once, then never again for this file
    assert len(read_all(log)) == 40 * 16
    log.truncate_to(100)
    assert log.log_end_offset <= 100
    log.close()


def test_truncation_drops_the_reservation_and_appends_continue(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(), 0, fs=RecordingFS())
    _fill(log, 40)
    log.truncate_to(16 * 20)
    assert log.log_end_offset == 16 * 20
    _fill(log, 30)
    assert log.log_end_offset == 16 * 50
    assert [r.offset for r in read_all(log)] == list(range(16 * 50))
    log.close()


# --------------------------------------------------------------------------- validate_fields


def test_validate_fields_matches_validate():
    raw = make_batch([b"a", None, b""], ts=7, key=b"k")
    fields = validate_fields(raw)
    assert BatchHeader(*fields) == validate(raw)
    assert fields[1] == len(raw) and fields[12] == 3


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[: HEADER_SIZE - 1], "truncated header"),
        (lambda b: b[:16] + b"\x07" + b[17:], "bad magic"),
        (lambda b: b[:-1], "length field"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "digest mismatch"),
        (lambda b: b[:49] + b"\x00\x40" + b[51:], "bad attributes"),
        (lambda b: b[:85] + (0).to_bytes(4, "big") + b[89:], "bad counts"),
    ],
)
def test_validate_fields_rejects_what_validate_rejects(damage, reason):
    bad = damage(make_batch([b"a", b"b"], ts=7))
    for fn in (validate, validate_fields):
        with pytest.raises(CorruptBatchError, match=reason):
            fn(bad)


# ------------------------------------------------------------------------------ read path


def _expected_read(batches, offset, max_bytes, max_offset):
    """The most PartitionLog.read may return (it may stop earlier, at an index boundary)."""
    out, first = [], True
    for h, raw in batches:
        if h.next_offset <= offset:
            continue
        if max_offset is not None and h.last_offset >= max_offset:
            break
        if not first and sum(map(len, out)) + len(raw) > max_bytes:
            break
        out.append(raw)
        first = False
    return b"".join(out)


def test_reads_from_batch_boundaries_match_the_contract(tmp_path):
    # batches of varied sizes around the index interval, so some are indexed and some not
    log = PartitionLog.open(tmp_path, LogConfig(index_interval_bytes=300), 0)
    for i in range(40):
        log.append(make_batch([b"v" * (17 * (i % 7))] * (1 + i % 4), ts=i), 0, 0)
    data = log.read(0, 1 << 30)
    batches = [(h, bytes(mv)) for h, mv in iter_batches(data)]
    leo = log.log_end_offset
    for h, _ in batches:
        for max_bytes in (0, 150, 400, 1000, 5000):
            for max_offset in (None, h.next_offset, h.next_offset + 3, leo):
                got = log.read(h.base_offset, max_bytes, max_offset)
                most = _expected_read(batches, h.base_offset, max_bytes, max_offset)
                case = (h.base_offset, max_bytes, max_offset)
                # whole batches from the one asked for, never past the limits, never nothing
                # when something is readable (at least one batch even above max_bytes)
                assert most.startswith(got) and bool(got) == bool(most), case
                if got:
                    parts = list(iter_batches(got))
                    assert parts[0][0].base_offset == h.base_offset, case
                    assert len(parts) == 1 or len(got) <= max_bytes, case
    log.close()


# ----------------------------------------------------------------------------- append_many


def _small(i: int, n: int = 3) -> bytes:
    return make_batch([b"r%d-%d" % (i, j) for j in range(n)], ts=100 + i)


def test_append_many_writes_what_appending_one_by_one_writes(tmp_path):
    batches = [_small(i, 1 + i % 3) for i in range(20)]
    one = PartitionLog.open(tmp_path / "one", LogConfig(), 0)
    infos_one = [one.append(b, 2, 0) for b in batches]
    many = PartitionLog.open(tmp_path / "many", LogConfig(), 0)
    views = [memoryview(b) for b in batches]  # views into a request: nothing is copied
    infos_many = many.append_many(views, 2, 0)
    assert infos_many == infos_one
    assert many.log_end_offset == one.log_end_offset
    assert many.read(0, 1 << 20) == one.read(0, 1 << 20)
    assert many.epochs.entries == one.epochs.entries == [(2, 0)]
    many.close()
    reopened = PartitionLog.open(tmp_path / "many", LogConfig(), 0)
    assert read_all(reopened) == read_all(one)
    one.close()
    reopened.close()


def test_append_many_is_all_or_nothing(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(max_message_bytes=2000), 0)
    log.append(_small(0), 0, 0)
    size = log.active_segment.file.size()
    good = [_small(i) for i in range(1, 4)]
    bad = bytearray(_small(9))
    bad[-1] ^= 1
    big = make_batch([b"x" * 3000])
    for batches, error in (
        ([*good, bytes(bad)], CorruptBatchError),
        ([good[0], big, good[1]], RecordTooLargeError),
        ([good[0], b"\x00" * 10], CorruptBatchError),
    ):
        with pytest.raises(error):
            log.append_many(batches, 0, 0)
        assert log.log_end_offset == 3 and log.active_segment.file.size() == size
    log.append(_small(5), 4, 0)  # the leader epoch is 4 now
    with pytest.raises(StaleLeaderEpochError):
        log.append_many(good, 3, 0)
    assert log.log_end_offset == 6
    assert log.append_many([], 4, 0) == []
    log.close()


def test_append_many_rolls_segments_inside_one_call(tmp_path):
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=1000), 0)
    batches = [_small(i) for i in range(30)]
    infos = log.append_many(batches, 0, 0)
    assert [i.base_offset for i in infos] == list(range(0, 90, 3))
    assert len(log.segments) > 3
    assert all(0 < s.size <= 1000 for s in log.segments)
    assert [r.offset for r in read_all(log)] == list(range(90))
    log.abandon()  # crash: recovery must find every batch
    log = PartitionLog.open(tmp_path, LogConfig(segment_bytes=1000), 0)
    assert [r.value for r in read_all(log)] == [
        b"r%d-%d" % (i, j) for i in range(30) for j in range(3)
    ]
    log.close()


def test_append_many_beyond_one_pwritev(tmp_path, monkeypatch):
    from rillet.logstore import log as L

    monkeypatch.setattr(L, "_MAX_RUN", 7)  # several writes per call, as with > IOV_MAX / 2
    log = PartitionLog.open(tmp_path, LogConfig(index_interval_bytes=0), 0)
    infos = log.append_many([_small(i, 1) for i in range(25)], 0, 0)
    assert [i.base_offset for i in infos] == list(range(25))
    assert [r.value for r in read_all(log)] == [b"r%d-0" % i for i in range(25)]
    assert log.active_segment.offsets == list(range(1, 25))  # every batch indexed
    log.close()


def test_a_read_at_one_of_the_latest_batches_is_one_pread_without_the_header_walk(
    tmp_path, monkeypatch
):
    # a follower or a consumer at the tail reads from a batch a round or two back, which the
    # sparse index does not hold (batches far smaller than index.interval.bytes)
    from rillet.logstore.segment import Segment

    log = PartitionLog.open(tmp_path, LogConfig(index_interval_bytes=1 << 20), 0)
    for i in range(40):
        log.append(make_batch([b"v%d" % i] * (1 + i % 3), ts=i), 0, 0)
    everything = log.read(0, 1 << 30)
    starts = [h.base_offset for h, _ in iter_batches(everything)]
    expected = {s: everything[everything.index(raw):] for s, raw in
                ((h.base_offset, bytes(mv)) for h, mv in iter_batches(everything))}
    reads = []
    real_read_at = F.SegmentFile.read_at
    monkeypatch.setattr(F.SegmentFile, "read_at",
                        lambda f, pos, n: reads.append(n) or real_read_at(f, pos, n))

    def no_walk(self, offset):
        raise AssertionError("find walked the headers")

    monkeypatch.setattr(Segment, "find", no_walk)
    for start in starts[-Segment.TAIL:]:
        reads.clear()
        assert log.read(start, 1 << 20) == expected[start]
        assert len(reads) == 1  # one pread, no header read
    monkeypatch.undo()
    # limits the tail cannot vouch for go the general way, with the same answers
    assert log.read(starts[-3], 1) == expected[starts[-3]][: len(expected[starts[-3]])
                                                           - len(expected[starts[-2]])]
    assert log.read(starts[-3], 1 << 20, max_offset=starts[-1]) == log.read(starts[-3], 1) + \
        log.read(starts[-2], 1)
    # a truncation forgets the positions it cut: the same offsets, new batches
    log.truncate_to(starts[-3])
    log.append(make_batch([b"new-a", b"new-b"], ts=99), 1, 0)
    log.append(make_batch([b"new-c"], ts=100), 1, 0)
    got = list(iter_batches(log.read(starts[-3], 1 << 20)))
    assert [bytes(mv) for _, mv in got] == [bytes(mv) for _, mv in
                                             iter_batches(log.read(0, 1 << 30))][-2:]
    assert got[0][0].leader_epoch == 1
    log.close()
