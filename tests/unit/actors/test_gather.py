"""FetchGather: a long poll's answer is sent exactly once, whenever it ends."""

from __future__ import annotations

import pytest
from rillet.actors.gather import FetchGather
from rillet.transport import protocol as P

pytestmark = pytest.mark.timeout(10)


def _gather(sent: list) -> FetchGather:
    return FetchGather(
        [("t", 0), ("t", 1)],
        min_bytes=1,
        max_bytes=1 << 20,
        max_wait_ms=60_000,
        send=sent.append,
        call_later=lambda _delay, _fn: None,
    )


def test_ended_before_any_partition_answered_it_still_answers_once() -> None:
    # a session stopped (its client died) right after sending the reads: the answer (which
    # releases the request's bytes) must still go out, with every partition named
    sent: list = []
    g = _gather(sent)
    g.expire()
    assert len(sent) == 1
    parts = [p.partition for t in sent[0].topics for p in t.partitions]
    assert parts == [0, 1]
    assert all(p.records == b"" for t in sent[0].topics for p in t.partitions)
    # the partitions' late answers change nothing
    g.immediate(("t", 0), P.FetchPartitionResponse(partition=0, records=b"late"))
    assert len(sent) == 1


def test_ended_after_one_partition_answered_keeps_that_answer() -> None:
    sent: list = []
    g = _gather(sent)
    g.immediate(("t", 1), P.FetchPartitionResponse(partition=1, high_watermark=7))
    g.expire()
    (response,) = sent
    by_partition = {p.partition: p for t in response.topics for p in t.partitions}
    assert by_partition[1].high_watermark == 7
    assert by_partition[0].high_watermark == -1
