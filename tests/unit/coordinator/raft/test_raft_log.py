"""MemoryRaftLog: reads, buffered writes, durability model, snapshots."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.raft import LogEntry, MemoryRaftLog, Snapshot


def entries(*terms):
    return [LogEntry(t, f"e{i}".encode()) for i, t in enumerate(terms, 1)]


def test_append_read_truncate():
    log = MemoryRaftLog()
    assert (log.last_index, log.last_term, log.term_at(0)) == (0, 0, 0)
    log.append(entries(1, 1, 2))
    assert (log.last_index, log.last_term) == (3, 2)
    assert log.term_at(2) == 1 and log.term_at(4) is None
    assert log.entries(2, 10) == entries(1, 1, 2)[1:]
    log.truncate_from(2)
    assert log.last_index == 1
    with pytest.raises(IndexError):
        log.entry(2)


def test_only_flushed_state_survives():
    log = MemoryRaftLog()
    log.append(entries(1, 1))
    log.flush()
    log.truncate_from(2)
    log.append([LogEntry(2, b"x"), LogEntry(2, b"y")])
    crashed = log.durable()
    assert crashed.last_index == 2 and crashed.term_at(2) == 1
    log.flush()
    after = log.durable()
    assert [e.payload for e in after.entries(1, 4)] == [b"e1", b"x", b"y"]


def test_compact_keeps_the_suffix_and_answers_the_snapshot_term():
    log = MemoryRaftLog(entries(1, 1, 2, 2))
    log.compact(Snapshot(2, 1, b"s"))
    assert (log.snapshot_index, log.snapshot_term, log.last_index) == (2, 1, 4)
    assert log.term_at(2) == 1 and log.term_at(1) is None
    assert log.entry(3).term == 2
    with pytest.raises(IndexError):
        log.entries(2, 4)
    with pytest.raises(IndexError):
        log.truncate_from(2)
    with pytest.raises(ValueError):
        log.compact(Snapshot(3, 9, b"bad term"))
    log.flush()
    assert log.durable().snapshot() == Snapshot(2, 1, b"s")


def test_reset_replaces_everything():
    log = MemoryRaftLog(entries(1, 1, 1))
    log.reset(Snapshot(7, 3, b"img"))
    assert (log.snapshot_index, log.last_index, log.last_term) == (7, 7, 3)
    assert log.durable().last_index == 3  # not flushed yet


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("atcfr"), st.integers(0, 6)), max_size=40))
def test_memory_log_matches_a_list_model(ops):
    """Random appends, truncations, compactions, flushes and crashes against a plain model:
    (snapshot index, snapshot term, entries) live and as last flushed."""
    log = MemoryRaftLog()
    live = [0, 0, []]  # snapshot index, snapshot term, entries after it
    flushed = [0, 0, []]
    term = 1
    for op, n in ops:
        if op == "a":
            term += n % 2
            new = [LogEntry(term, bytes([n, i])) for i in range(n)]
            log.append(new)
            live[2] = live[2] + new
        elif op == "t" and live[2]:
            index = live[0] + 1 + n % len(live[2])
            log.truncate_from(index)
            live[2] = live[2][: index - live[0] - 1]
        elif op == "c" and live[2]:
            index = live[0] + 1 + n % len(live[2])
            snap_term = live[2][index - live[0] - 1].term
            log.compact(Snapshot(index, snap_term, b"s"))
            live = [index, snap_term, live[2][index - live[0] :]]
        elif op == "f":
            log.flush()
            flushed = [live[0], live[1], list(live[2])]
        elif op == "r":  # crash and recover
            log = log.durable()
            live = [flushed[0], flushed[1], list(flushed[2])]
        assert (log.snapshot_index, log.snapshot_term) == (live[0], live[1])
        assert log.last_index == live[0] + len(live[2])
        assert log.entries(live[0] + 1, log.last_index + 1) == live[2]
        assert log.last_term == (live[2][-1].term if live[2] else live[1])
