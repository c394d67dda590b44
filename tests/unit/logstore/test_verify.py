"""Damage detection (logstore/verify.py): first-read verification of data opened unchecked,
the resumable scrub, recovery's damage-vs-torn-tail report, and healing by truncation."""

from __future__ import annotations

import pytest
from rillet.logstore.batch import iter_batches, read_header, records
from rillet.logstore.errors import DamagedLogError
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.recovery import CLEAN_SHUTDOWN_FILE

from .helpers import make_batch, segment_files

SMALL = LogConfig(segment_bytes=1500, index_interval_bytes=200)


def fill(log, n_batches, per_batch=3, epoch=0):
    for i in range(n_batches):
        vals = [b"v%d" % (log.log_end_offset + j) for j in range(per_batch)]
        log.append(make_batch(vals, ts=1_000 + log.log_end_offset), epoch, i)


def batch_positions(path):
    """[(position, base_offset, length)] of the batches of one segment file."""
    data = path.read_bytes()
    out, pos = [], 0
    for header, view in iter_batches(data, validate=False):
        out.append((pos, header.base_offset, header.length))
        pos += len(view)
    return out


def damage_file(path, position, how, length=0):
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[position] ^= 0x40
    elif how == "zero":
        data[position : position + length] = bytes(length)
    path.write_bytes(bytes(data))


def closed_log(tmp_path, batches=30):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, batches)
    good = [(r.offset, r.value) for r in records(read_everything(log))]
    log.close()
    return good


def read_everything(log, start=0):
    out = b""
    offset = start
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20)
        if not data:
            break
        out += data
        last = None
        for header, _ in iter_batches(data, validate=False):
            last = header
        offset = last.next_offset
    return out


def pick(tmp_path, segment=1, batch=2):
    """(segment path, position, base offset) of a batch in the middle of the log."""
    path = segment_files(tmp_path)[segment]
    pos, base, length = batch_positions(path)[batch]
    return path, pos, base, length


@pytest.mark.parametrize("how", ["flip-payload", "flip-header", "zero"])
def test_first_read_finds_damage_and_serves_what_precedes_it(tmp_path, how):
    good = closed_log(tmp_path)
    path, pos, base, length = pick(tmp_path)
    if how == "flip-payload":
        damage_file(path, pos + length - 3, "flip")
    elif how == "flip-header":
        damage_file(path, pos + 60, "flip")  # inside the digest-covered header fields
    else:
        damage_file(path, pos, "zero", length)
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.recovery.clean and log.recovery.damage is None  # recovery trusts it
    assert log.unverified_bytes > 0
    served = []
    offset = 0
    with pytest.raises(DamagedLogError) as exc:
        while True:
            data = log.read(offset, 1 << 20)
            for r in records(data):  # every byte served is intact
                served.append((r.offset, r.value))
            offset = served[-1][0] + 1
    assert served == [g for g in good if g[0] < base]
    assert exc.value.offset == base
    assert log.damage.offset == base and log.damage.source == "read"
    assert log.read(0, 1 << 20)  # the good prefix stays readable


def test_each_byte_is_checked_once_and_new_data_is_trusted(tmp_path):
    closed_log(tmp_path)
    log = PartitionLog.open(tmp_path, SMALL, 0)
    before = log.unverified_bytes
    assert before == log.size_in_bytes
    log.read(0, 1 << 20)
    after_one = log.unverified_bytes
    assert 0 < after_one < before
    read_everything(log)
    assert log.unverified_bytes == 0
    fill(log, 3)  # appended by this process: validated on append, nothing to check
    assert log.unverified_bytes == 0
    # a fresh log has nothing unverified either
    fresh = PartitionLog.open(tmp_path / "fresh", SMALL, 0)
    fill(fresh, 5)
    assert fresh.unverified_bytes == 0


@pytest.mark.parametrize("seed", range(4))
def test_scrub_finds_a_flip_anywhere_resumably(tmp_path, seed):
    closed_log(tmp_path)
    files = segment_files(tmp_path)
    path = files[seed % (len(files) - 1)]  # a sealed segment
    positions = batch_positions(path)
    pos, base, length = positions[min(2 + seed, len(positions) - 1)]
    damage_file(path, pos + 89 + (seed * 13) % (length - 89), "flip")
    log = PartitionLog.open(tmp_path, SMALL, 0)
    steps = 0
    found = None
    while True:
        step = log.scrub(150)
        steps += 1
        assert step.bytes_checked <= 150 + length
        if step.damage is not None:
            found = step.damage
            break
        assert not step.pass_done, "the pass ended without finding the flip"
    assert steps > 1  # resumable: many small steps
    assert found.offset == base and found.source == "scrub"
    assert log.damage == found
    with pytest.raises(DamagedLogError):
        log.read(base, 1 << 20)


def test_scrub_pass_completes_and_rechecks_sealed_segments(tmp_path):
    closed_log(tmp_path)
    log = PartitionLog.open(tmp_path, SMALL, 0)
    while not log.scrub(1 << 20).pass_done:
        pass
    assert log.unverified_bytes == 0 and log.damage is None
    # bit rot after the first pass: only a new pass over the sealed segments finds it
    path, pos, base, length = pick(tmp_path, segment=0, batch=1)
    damage_file(path, pos + length - 1, "flip")
    assert log.scrub(1 << 20).pass_done  # the old pass is over
    log.start_scrub_pass()
    damage = None
    while damage is None:
        step = log.scrub(1 << 20)
        damage = step.damage
        assert damage is not None or not step.pass_done
    assert damage.offset == base


def test_truncating_to_the_damage_heals_the_log(tmp_path):
    good = closed_log(tmp_path)
    path, pos, base, length = pick(tmp_path)
    damage_file(path, pos + length - 1, "flip")
    log = PartitionLog.open(tmp_path, SMALL, 0)
    while log.scrub(1 << 20).damage is None:
        pass
    leo = log.log_end_offset
    log.truncate_to(log.damage.offset)
    assert log.damage is None and log.log_end_offset == base
    # re-fetch the rest from a healthy replica: replay the good values as stamped batches
    healthy = PartitionLog.open(tmp_path / "healthy", SMALL, 0)
    for offset, value in good:
        healthy.append(make_batch([value], ts=1_000 + offset), 0, 0)
    while log.log_end_offset < leo:
        log.append_replicated(healthy.read(log.log_end_offset, 1 << 20), 0)
    assert [(r.offset, r.value) for r in records(read_everything(log))] == good


def test_recovery_reports_damage_below_the_recovery_point_not_a_torn_tail(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 30)
    log.flush()
    log._write_recovery_point()
    log.abandon()  # a crash after everything was fsynced and checkpointed
    (tmp_path / CLEAN_SHUTDOWN_FILE).unlink(missing_ok=True)
    files = segment_files(tmp_path)
    last = files[-1]
    pos, base, length = batch_positions(last)[1]
    damage_file(last, pos + length - 1, "flip")
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert not log.recovery.clean
    assert log.recovery.damage is not None and log.recovery.damage.offset == base
    assert log.recovery.damage.source == "recovery"
    assert log.log_end_offset == base
    assert log.damage is None  # already cut off: the owner reports it (partition_damage.py)


def test_recovery_reports_a_torn_tail_as_such(tmp_path):
    log = PartitionLog.open(tmp_path, SMALL, 0)
    fill(log, 30)
    leo = log.log_end_offset
    log.abandon()  # crash with unflushed appends (recovery point 0)
    last = segment_files(tmp_path)[-1]
    pos, base, length = batch_positions(last)[-1]
    data = last.read_bytes()
    last.write_bytes(data[: pos + length // 2])  # the last write was torn
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.recovery.damage is None
    assert log.recovery.torn_tail is not None
    assert log.log_end_offset == base < leo
    assert log.damage is None


def test_truncated_segment_in_the_middle_is_damage(tmp_path):
    closed_log(tmp_path)
    path, pos, base, length = pick(tmp_path)
    path.write_bytes(path.read_bytes()[: pos + 10])  # cut inside a batch, mid-log
    log = PartitionLog.open(tmp_path, SMALL, 0)
    assert log.recovery.damage is not None
    assert log.recovery.damage.offset == base
    assert log.log_end_offset == base


def test_damaged_header_magic_found_by_read(tmp_path):
    closed_log(tmp_path)
    path, pos, base, length = pick(tmp_path)
    damage_file(path, pos + 16, "flip")  # the magic byte: the header no longer parses
    assert read_header(path.read_bytes(), 0)  # the first batch is fine
    log = PartitionLog.open(tmp_path, SMALL, 0)
    with pytest.raises(DamagedLogError) as exc:
        read_everything(log)
    assert exc.value.offset <= base
    assert log.damage.offset <= base
