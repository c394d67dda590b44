"""ListPartitionReassignments from the metadata image (actors/log_dirs.py)."""

from __future__ import annotations

from rillet.actors.log_dirs import list_reassignments
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.transport import protocol as P


def _image() -> MetadataImage:
    moving = PartitionInfo(0, (1, 2, 3), (1, 2), 1, 4, adding_replicas=(3,),
                           removing_replicas=(1,))
    still = PartitionInfo(1, (2, 3), (2, 3), 2, 0)
    other = PartitionInfo(0, (1,), (1,), 1, 0, adding_replicas=(2,))
    return MetadataImage(topics={
        "t": TopicInfo("t", "id-t", {0: moving, 1: still}),
        "u": TopicInfo("u", "id-u", {0: other}),
        "quiet": TopicInfo("quiet", "id-q", {0: PartitionInfo(0, (1,), (1,), 1, 0)}),
    })


def test_only_partitions_with_adding_or_removing_replicas_are_listed() -> None:
    r = list_reassignments(_image(), None)
    assert r.error_code == 0
    assert [(t.name, [(p.partition, p.replicas, p.adding_replicas, p.removing_replicas)
                      for p in t.partitions]) for t in r.topics] == [
        ("t", [(0, (1, 2, 3), (3,), (1,))]),
        ("u", [(0, (1,), (2,), ())]),
    ]


def test_named_partitions_and_unknown_topics() -> None:
    named = list_reassignments(_image(), (P.GroupTopicPartitions(topic="t", partitions=(1,)),
                                          P.GroupTopicPartitions(topic="u", partitions=(0,))))
    assert [t.name for t in named.topics] == ["u"]  # t-1 is not moving
    unknown = list_reassignments(_image(), (P.GroupTopicPartitions(topic="x", partitions=(0,)),))
    assert unknown.error_code == P.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert "x" in unknown.error_message and unknown.topics == ()
