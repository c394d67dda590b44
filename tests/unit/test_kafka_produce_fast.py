"""The hand-written ProduceResponse (actors/kafka_produce_fast.py) is byte for byte the frame
kio writes for the same response, for every version the KAFKA listener serves (3-11), and it
goes through the listener's quota and metrics paths as kio's response does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from rillet.actors import kafka_quotas
from rillet.actors.kafka_metrics import error_codes
from rillet.actors.kafka_produce_fast import PartitionAnswer, ProduceAnswer, TopicAnswer
from rillet.actors.kafka_wire import encode_response

pytestmark = pytest.mark.timeout(60)
CODES = [c.value for c in ErrorCode]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

partitions = st.builds(
    PartitionAnswer,
    index=st.integers(0, 2**31 - 1),
    error_code=st.sampled_from(CODES),
    base_offset=st.integers(-1, 2**63 - 1),
    log_append_time=st.one_of(st.just(-1), st.integers(0, 2**42)),
    log_start_offset=st.integers(-1, 2**63 - 1),
    error_message=st.one_of(st.none(), st.text(max_size=40)),
)
topics = st.builds(TopicAnswer, name=st.text(min_size=1, max_size=30),
                   partition_responses=st.lists(partitions, max_size=4).map(tuple))


def kio_response(answer: ProduceAnswer):
    """What actors/kafka_produce.py built with kio before (the reference)."""
    cls = load_response_schema(0, answer.version)
    mod = __import__(cls.__module__, fromlist=["PartitionProduceResponse"])
    names = {f.name for f in dataclasses.fields(mod.PartitionProduceResponse)}

    def partition(p: PartitionAnswer):
        values = dict(index=p.index, error_code=ErrorCode(p.error_code),
                      base_offset=p.base_offset,
                      log_append_time=None if p.log_append_time < 0
                      else EPOCH + timedelta(milliseconds=p.log_append_time),
                      log_start_offset=p.log_start_offset, record_errors=(),
                      error_message=p.error_message)
        return mod.PartitionProduceResponse(**{k: v for k, v in values.items() if k in names})

    return cls(throttle_time=kafka_quotas.throttle_time(
        int(answer.throttle_time.total_seconds() * 1000)), responses=tuple(
        mod.TopicProduceResponse(name=t.name, partition_responses=tuple(
            partition(p) for p in t.partition_responses)) for t in answer.responses))


@settings(max_examples=60, deadline=None)
@given(version=st.integers(3, 11), responses=st.lists(topics, max_size=3).map(tuple),
       throttle=st.integers(0, 2**31 - 1), cid=st.integers(-(2**31), 2**31 - 1))
def test_the_frame_is_kios_for_every_version(version, responses, throttle, cid) -> None:
    answer = ProduceAnswer(version, responses, kafka_quotas.throttle_time(throttle))
    if version < 8:  # no error_message field before v8: kio has nothing to write either
        answer = dataclasses.replace(answer, responses=tuple(
            dataclasses.replace(t, partition_responses=tuple(
                dataclasses.replace(p, error_message=None) for p in t.partition_responses))
            for t in responses))
    assert encode_response(cid, answer) == encode_response(cid, kio_response(answer))


def test_quotas_and_metrics_read_it_as_kios() -> None:
    answer = ProduceAnswer(9, (TopicAnswer("t", (
        PartitionAnswer(0, 0, 5, -1, 0, None),
        PartitionAnswer(1, ErrorCode.not_leader_or_follower.value, -1, -1, -1, "moved"))),),
        kafka_quotas.throttle_time(0))
    throttled = kafka_quotas.with_throttle(answer, 250)
    assert kafka_quotas.throttle_ms_of(throttled) == 250
    assert encode_response(7, throttled) == encode_response(7, kio_response(throttled))
    codes: list[int] = []
    error_codes(throttled, codes)
    assert codes == [ErrorCode.not_leader_or_follower.value]
