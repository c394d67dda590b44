"""Under exactly_once a commit sends the offsets to the transaction (two round trips to
the coordinators) while the run thread flushes the transaction's records, instead of one
after the other (runtime.Runtime.send_offsets_while_flushing)."""

from __future__ import annotations

import threading
import types

import pytest

from rillet.records import TopicPartition
from rillet.streams.runtime import Runtime


class OverlapProducer:
    """send_offsets_to_transaction answers only once flush() has started (and the other
    way round): done one after the other, the two would wait for each other until the
    deadline."""

    _max_block_ms = 5000

    def __init__(self, fail: Exception | None = None) -> None:
        self.flushing = threading.Event()
        self.offsets_sent = threading.Event()
        self.fail = fail
        self.sent: list = []

    def send_offsets_to_transaction(self, offsets, group_metadata) -> None:
        assert self.flushing.wait(5), "the offsets waited for the flush to end"
        if self.fail is not None:
            self.offsets_sent.set()  # (answered: with an error)
            raise self.fail
        self.sent.append((dict(offsets), group_metadata))
        self.offsets_sent.set()

    def flush(self, timeout=None) -> None:
        self.flushing.set()
        assert self.offsets_sent.wait(5), "the flush waited for the offsets"


def runtime(producer) -> Runtime:
    rt = Runtime.__new__(Runtime)
    rt.producer = producer
    rt.consumer = types.SimpleNamespace(group_metadata=lambda: "group-meta")
    rt.cfg = types.SimpleNamespace(application_id="app")
    rt._offsets_thread = None
    return rt


@pytest.mark.timeout(30)
def test_the_offsets_go_while_the_records_are_flushed():
    producer = OverlapProducer()
    rt = runtime(producer)
    try:
        rt.send_offsets_while_flushing({TopicPartition("in", 0): 7})
        rt.send_offsets_while_flushing({TopicPartition("in", 0): 9})  # the thread again
    finally:
        rt._offsets_thread.shutdown()
    assert producer.sent[0] == ({TopicPartition("in", 0): 7}, "group-meta")
    assert len(producer.sent) == 2


@pytest.mark.timeout(30)
def test_an_error_of_the_offsets_is_raised_after_the_flush():
    rt = runtime(OverlapProducer(fail=RuntimeError("fenced")))
    try:
        with pytest.raises(RuntimeError, match="fenced"):
            rt.send_offsets_while_flushing({TopicPartition("in", 0): 7})
    finally:
        rt._offsets_thread.shutdown()
