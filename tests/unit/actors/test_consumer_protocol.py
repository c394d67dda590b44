"""Reading Kafka's ``consumer`` embedded protocol (actors/consumer_protocol.py) against
kafka-python's own encoder (code no one here wrote), every version; malformed bytes decode
to nothing and never raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)
from rillet.actors.consumer_protocol import assignment_partitions, subscription_topics

topics = st.lists(st.text(min_size=1, max_size=20), max_size=5, unique=True)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_kafka_pythons_subscription_reads_back(version) -> None:
    data = ConsumerProtocolSubscription(topics=["orders", "pay-ments"], user_data=b"u",
                                        version=version).encode(version=version)
    assert subscription_topics(bytes(data)) == ("orders", "pay-ments")


@pytest.mark.parametrize("version", [0, 1, 3])
def test_kafka_pythons_assignment_reads_back(version) -> None:
    T = ConsumerProtocolAssignment.TopicPartition
    data = ConsumerProtocolAssignment(
        assigned_partitions=[T(topic="orders", partitions=[3, 0]), T(topic="x", partitions=[])],
        user_data=b"", version=version).encode(version=version)
    assert assignment_partitions(bytes(data)) == {"orders": (0, 3), "x": ()}


@given(st.binary(max_size=64))
def test_any_bytes_decode_without_raising(data: bytes) -> None:
    assert isinstance(subscription_topics(data), tuple)
    assert isinstance(assignment_partitions(data), dict)
