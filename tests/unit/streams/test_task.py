"""StreamTask (rillet/streams/task.py) without a broker: a DSL topology, the real stores
(stores.build) and a collector that records what the producer would send.

Checked: records of a task's partitions go through in timestamp order (Kafka's
PartitionGroup), the offsets to commit are those after the last record processed, each
deserialization handler (continue, dead letter with KIP-1034 headers, fail), changelog
offsets reaching store.commit, and the exactly_once rule for local state (kept after a clean
close, wiped after a dirty one)."""

from __future__ import annotations

import os

import pytest

from rillet.records import ConsumerRecord, TopicPartition
from rillet.streams import serdes
from rillet.streams.api import TaskId
from rillet.streams.errors import DeserializationError
from rillet.streams.stores import build
from rillet.streams.task import DLQ_HEADERS, StreamTask
from rillet.streams.topology import Topology


class _Md:
    def __init__(self, topic, partition, offset):
        self.topic, self.partition, self.offset = topic, partition, offset


class _Future:
    def __init__(self, md):
        self.md = md

    def get(self, timeout=None):
        return self.md


class FakeProducer:
    """What Collector needs of a Producer: send() returning a future of the metadata."""

    def __init__(self):
        self.sent: list[tuple] = []
        self.next: dict[tuple[str, int], int] = {}

    def send(self, topic, value, key, headers, partition, timestamp):
        p = 0 if partition is None else partition
        off = self.next.get((topic, p), 0)
        self.next[(topic, p)] = off + 1
        self.sent.append((topic, key, value, timestamp, headers, partition))
        return _Future(_Md(topic, p, off))


def _collector():
    from rillet.streams.task import Collector

    return Collector(FakeProducer())


def _rec(topic, offset, ts, value, partition=0, key=None):
    return ConsumerRecord(topic, partition, offset, ts, key, value, ())


def _task(topology, tmp_path, *, handler="log_and_fail", eos=False, sub=0, partition=0):
    compiled = topology.compile()
    collector = _collector()
    task = StreamTask(TaskId(sub, partition), compiled.subtopologies[sub],
                      application_id="app", state_dir=str(tmp_path), collector=collector,
                      store_factory=build, exactly_once=eos, handler=handler,
                      dlq_topic="dlq" if handler == "dead_letter" else None,
                      partition_count=lambda t: 1)
    task.initialize()
    for st in compiled.subtopologies[sub].sources:
        task.add_partition(TopicPartition(st.topic, partition))
    return task, collector


def test_records_of_two_partitions_go_through_in_timestamp_order(tmp_path) -> None:
    t = Topology()
    seen: list = []
    a = t.stream("a", value_serde=serdes.String)
    b = t.stream("b", value_serde=serdes.String)
    a.merge(b).peek(lambda k, v: seen.append(v))
    task, _ = _task(t, tmp_path)
    task.add_records(TopicPartition("a", 0), [_rec("a", i, ts, f"a{ts}".encode())
                                              for i, ts in enumerate([1, 4, 7])])
    task.add_records(TopicPartition("b", 0), [_rec("b", i, ts, f"b{ts}".encode())
                                              for i, ts in enumerate([2, 3, 9])])
    assert task.process(4) == 4
    assert seen == ["a1", "b2", "b3", "a4"]
    assert task.offsets_to_commit() == {TopicPartition("a", 0): 2, TopicPartition("b", 0): 2}
    task.mark_committed(task.offsets_to_commit())
    assert task.offsets_to_commit() == {}
    assert task.process(100) == 2
    assert seen[4:] == ["a7", "b9"]
    assert task.offsets_to_commit() == {TopicPartition("a", 0): 3, TopicPartition("b", 0): 3}
    assert task.graph.stream_time == 9


def _long_stream(tmp_path, handler):
    t = Topology()
    t.stream("in", value_serde=serdes.Long).map_values(lambda v: v + 1).to(
        "out", value_serde=serdes.Long)
    task, collector = _task(t, tmp_path, handler=handler)
    records = [_rec("in", 0, 10, serdes.Long.serialize("in", 1)),
               _rec("in", 1, 11, b"bad", key=b"k"),
               _rec("in", 2, 12, serdes.Long.serialize("in", 2))]
    task.add_records(TopicPartition("in", 0), records)
    return task, collector.producer


def test_log_and_continue_skips_the_record_and_commits_past_it(tmp_path) -> None:
    task, producer = _long_stream(tmp_path, "log_and_continue")
    assert task.process(10) == 3
    assert [serdes.Long.deserialize("out", s[2]) for s in producer.sent] == [2, 3]
    assert (task.processed, task.skipped) == (2, 1)
    assert task.offsets_to_commit() == {TopicPartition("in", 0): 3}


def test_dead_letter_sends_the_raw_record_with_the_error_headers(tmp_path) -> None:
    task, producer = _long_stream(tmp_path, "dead_letter")
    task.process(10)
    dlq = [s for s in producer.sent if s[0] == "dlq"]
    assert len(dlq) == 1
    _, key, value, ts, headers, _ = dlq[0]
    assert (key, value, ts) == (b"k", b"bad", 11)
    h = dict(headers)
    assert [k for k, _ in headers] == list(DLQ_HEADERS)
    assert (h["__streams.errors.topic"], h["__streams.errors.partition"],
            h["__streams.errors.offset"]) == (b"in", b"0", b"1")
    assert h["__streams.errors.exception"] == b"SerdeError"
    assert b"'in'" in h["__streams.errors.message"]  # the serde's message names the topic
    assert task.dead_lettered == 1 and task.offsets_to_commit() == {TopicPartition("in", 0): 3}


def test_log_and_fail_raises_and_does_not_commit_past_the_bad_record(tmp_path) -> None:
    task, producer = _long_stream(tmp_path, "log_and_fail")
    with pytest.raises(DeserializationError) as err:
        task.process(10)
    assert (err.value.topic, err.value.partition, err.value.offset) == ("in", 0, 1)
    assert task.offsets_to_commit() == {TopicPartition("in", 0): 1}
    assert len(producer.sent) == 1


def _counting(tmp_path, eos):
    t = Topology()
    t.stream("words", key_serde=serdes.String, value_serde=serdes.String) \
        .group_by_key().count(store="counts")
    task, collector = _task(t, tmp_path, eos=eos)
    task.add_records(TopicPartition("words", 0), [
        _rec("words", i, i, b"x", key=w.encode()) for i, w in enumerate("abab")])
    task.process(10)
    return task, collector


def test_changelog_offsets_reach_the_store_checkpoint(tmp_path) -> None:
    task, collector = _counting(tmp_path, eos=False)
    written = collector.check()
    assert written == {("app-counts-changelog", 0): 4}
    task.commit_stores(written)
    assert task.stores["counts"].checkpoint() == 4
    task.commit_stores({})  # no new writes: the checkpoint stays
    assert task.stores["counts"].checkpoint() == 4
    task.close(clean=True)


@pytest.mark.parametrize("clean", [True, False])
def test_exactly_once_keeps_local_state_only_after_a_clean_close(tmp_path, clean) -> None:
    task, collector = _counting(tmp_path, eos=True)
    task.commit_stores(collector.check())
    task_dir = task.dir
    task.close(clean=clean)
    assert os.path.isdir(task_dir) == clean
    again, _ = _task(_topology_counts(), tmp_path, eos=True)
    store = again.stores["counts"]
    assert (store.get("a"), store.checkpoint()) == ((2, 4) if clean else (None, None))
    again.close(clean=True)


def _topology_counts():
    t = Topology()
    t.stream("words", key_serde=serdes.String, value_serde=serdes.String) \
        .group_by_key().count(store="counts")
    return t


def test_exactly_once_wipes_local_state_left_by_a_crash(tmp_path) -> None:
    task, collector = _counting(tmp_path, eos=True)
    task.commit_stores(collector.check())
    for store in task.stores.values():
        store.close()  # the process dies here: no task.close(), no clean-shutdown marker
    again, _ = _task(_topology_counts(), tmp_path, eos=True)
    assert again.stores["counts"].get("a") is None  # restored from the changelog instead
    again.close(clean=True)
    # at_least_once trusts the file (its checkpoint says what it holds)
    task, collector = _counting(tmp_path / "alos", eos=False)
    task.commit_stores(collector.check())
    for store in task.stores.values():
        store.close()
    again, _ = _task(_topology_counts(), tmp_path / "alos", eos=False)
    assert again.stores["counts"].get("a") == 2
    again.close(clean=True)
