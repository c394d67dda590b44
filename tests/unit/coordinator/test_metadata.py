"""Metadata image: records applied in order; controller decisions return records or errors."""

from __future__ import annotations

import json

import pytest
from rillet.coordinator import election as el
from rillet.coordinator import metadata as md


def _cluster(*brokers: int) -> md.MetadataImage:
    image = md.MetadataImage()
    for b in brokers:
        image = md.replay(md.register_broker(image, b, "127.0.0.1", 9000 + b), image)
    return image


def test_register_and_unfence() -> None:
    image = _cluster(1, 2)
    assert image.live_brokers() == [1, 2]
    assert image.offset == 4
    assert md.register_broker(image, 1, "127.0.0.1", 9001) == []  # nothing changed
    moved = md.register_broker(image, 1, "127.0.0.1", 9999)
    assert [type(r).__name__ for r in moved] == ["RegisterBroker", "UnfenceBroker"]
    fenced = md.apply(image, md.FenceBroker(broker_id=2))
    assert fenced.live_brokers() == [1] and image.live_brokers() == [1, 2]  # old image intact


def test_new_incarnation_fences_the_previous_process_at_once() -> None:
    """A broker restarted within its session (kill -9, restart 1 s later) must not keep its
    leaderships or ISR places: its log may have been cut short by recovery."""
    image = md.MetadataImage()
    for b in (1, 2, 3):
        image = md.replay(
            md.register_broker(image, b, "127.0.0.1", 9000 + b, incarnation=f"first-{b}"), image
        )
    image = md.replay(md.create_topic(image, "orders", 1, 3, {}, "id-1"), image)
    assert image.partition("orders", 0).leader == 1
    # the same process heartbeating again changes nothing
    assert md.register_broker(image, 1, "127.0.0.1", 9001, incarnation="first-1") == []
    records = md.register_broker(
        image, 1, "127.0.0.1", 9001, incarnation="second-1", clean_shutdown=False
    )
    names = [type(r).__name__ for r in records]
    assert names == ["FenceBroker", "PartitionChangeRecord", "RegisterBroker", "UnfenceBroker"]
    registered = records[2]
    assert registered.incarnation == "second-1" and registered.clean_shutdown is False
    after = md.replay(records[:-1], image)  # the controller unfences later, once caught up
    p = after.partition("orders", 0)
    assert p.leader == 2 and p.isr == (2, 3) and p.leader_epoch == 1
    assert after.brokers[1].fenced and after.brokers[1].incarnation == "second-1"
    # the incarnation survives a snapshot and an old record without the field still decodes
    assert md.decode_snapshot(md.encode_snapshot(after)).brokers[1].incarnation == "second-1"
    legacy = {"type": "RegisterBroker", "broker_id": 4, "host": "h", "port": 1, "rack": None}
    assert md.from_dict(legacy).incarnation == ""


def test_new_incarnation_of_the_last_in_sync_replica_keeps_its_isr_place() -> None:
    """The only in-sync copy is not thrown away: the partition is offline until it is back."""
    image = md.replay(md.register_broker(md.MetadataImage(), 1, "h", 1, incarnation="a"))
    image = md.replay(md.create_topic(image, "t", 1, 1, {}, "id"), image)
    records = md.register_broker(image, 1, "h", 1, incarnation="b")
    after = md.replay(records[:-1], image)
    assert after.partition("t", 0).isr == (1,) and after.partition("t", 0).leader == -1
    unfenced = md.replay(md.unfence_records(after, 1), after)
    assert unfenced.partition("t", 0).leader == 1


def test_create_topic_places_and_records() -> None:
    image = _cluster(1, 2, 3)
    records = md.create_topic(image, "orders", 3, 2, {"retention.ms": "100"}, "id-1")
    image = md.replay(records, image)
    topic = image.topics["orders"]
    assert topic.configs == {"retention.ms": "100"} and topic.topic_id == "id-1"
    assert [p.leader for p in topic.partitions.values()] == [1, 2, 3]
    assert all(p.isr == p.replicas and p.leader_epoch == 0 for p in topic.partitions.values())
    with pytest.raises(md.TopicExistsError):
        md.create_topic(image, "orders", 1, 1, {}, "id-2")


@pytest.mark.parametrize("name", ["", "..", "a b", "x" * 250, "ü"])
def test_illegal_topic_names(name: str) -> None:
    with pytest.raises(md.InvalidTopicError):
        md.create_topic(_cluster(1), name, 1, 1, {}, "id")


def test_replication_factor_above_live_brokers_is_refused() -> None:
    with pytest.raises(md.InvalidReplicationFactorError, match="live brokers"):
        md.create_topic(_cluster(1), "t", 1, 3, {}, "id")
    with pytest.raises(md.InvalidPartitionsError):
        md.create_topic(_cluster(1), "t", 0, 1, {}, "id")
    with pytest.raises(md.InvalidPartitionsError, match="limit"):
        md.create_topic(_cluster(1), "t", 10**9, 1, {}, "id")


def test_create_partitions_configs_and_delete() -> None:
    image = md.replay(md.create_topic(_cluster(1), "t", 2, 1, {}, "id"), _cluster(1))
    with pytest.raises(md.InvalidPartitionsError):
        md.create_partitions(image, "t", 2)
    with pytest.raises(md.InvalidPartitionsError, match="limit"):
        md.create_partitions(image, "t", 10**9)
    image = md.replay(md.create_partitions(image, "t", 5), image)
    assert sorted(image.topics["t"].partitions) == [0, 1, 2, 3, 4]
    image = md.replay(md.alter_configs(image, "t", [("cleanup.policy", "compact")]), image)
    assert image.topics["t"].configs == {"cleanup.policy": "compact"}
    image = md.replay(md.alter_configs(image, "t", [("cleanup.policy", None)]), image)
    assert image.topics["t"].configs == {}
    image = md.replay(md.delete_topic(image, "t"), image)
    assert "t" not in image.topics
    with pytest.raises(md.UnknownTopicError):
        md.delete_topic(image, "t")
    with pytest.raises(md.UnknownTopicError):
        md.create_partitions(image, "t", 9)


def test_partition_change_and_records_after_deletion_are_ignored() -> None:
    image = md.replay(md.create_topic(_cluster(1, 2), "t", 1, 2, {}, "id"), _cluster(1, 2))
    image = md.apply(
        image,
        el.PartitionChangeRecord(
            topic="t", partition=0, replicas=(1, 2), isr=(2,), leader=2, leader_epoch=1,
            partition_epoch=1,
        ),
    )
    p = image.partition("t", 0)
    assert (p.leader, p.isr, p.leader_epoch, p.replicas) == (2, (2,), 1, (1, 2))
    gone = md.apply(image, md.DeleteTopic(name="t"))
    assert md.apply(gone, md.SetConfig(topic="t", name="a", value="b")).topics == {}


def test_records_survive_json() -> None:
    image = _cluster(1)
    records = [
        *md.create_topic(image, "t", 2, 1, {"a.b": "c"}, "id"),
        el.PartitionChangeRecord(
            topic="t", partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=3,
            partition_epoch=2, damaged=(1,),
        ),
        md.SetConfig(topic="t", name="x", value=None),
        md.DeleteTopic(name="t"),
        md.FenceBroker(broker_id=1),
    ]
    decoded = [md.from_dict(json.loads(json.dumps(md.to_dict(r)))) for r in records]
    assert decoded == records
    with pytest.raises(ValueError):
        md.from_dict({"type": "Nope"})


def test_register_broker_records_the_inter_broker_listener() -> None:
    image = md.replay(
        md.register_broker(
            image := md.MetadataImage(), 1, "h", 9001, internal_host="h", internal_port=19001
        ),
        image,
    )
    info = image.brokers[1]
    assert (info.host, info.port, info.internal_address) == ("h", 9001, "h:19001")
    same = md.register_broker(image, 1, "h", 9001, internal_host="h", internal_port=19001)
    assert same == []
    moved = md.register_broker(image, 1, "h", 9001, internal_host="h", internal_port=19999)
    assert [type(r).__name__ for r in moved] == ["RegisterBroker", "UnfenceBroker"]
    # a snapshot keeps it
    restored = md.decode_snapshot(md.encode_snapshot(image))
    assert restored.brokers[1].internal_address == "h:19001"


def test_register_broker_records_written_before_the_listener_split_still_load() -> None:
    old = json.dumps(
        [{"type": "RegisterBroker", "broker_id": 2, "host": "h", "port": 1, "rack": None}]
    )
    (record,) = md.decode_records(old.encode())
    image = md.apply(md.MetadataImage(), record)
    assert image.brokers[2].internal_address is None  # callers fall back to the voters list


def test_inter_broker_address_registered_else_from_the_voters() -> None:
    image = md.replay(
        md.register_broker(md.MetadataImage(), 1, "h", 9001, internal_host="h", internal_port=19001)
    )
    voters = {1: "v:1", 2: "v:2"}
    assert image.inter_broker_address(1, voters) == "h:19001"
    assert image.inter_broker_address(2, voters) == "v:2"  # not registered yet
    assert image.inter_broker_address(3, voters) is None


def test_replay_of_many_records_equals_applying_them_one_by_one() -> None:
    image = _cluster(1, 2, 3)
    records = [
        *md.create_topic(image, "a", 50, 3, {}, "ida"),
        el.PartitionChangeRecord(topic="a", partition=3, replicas=(1, 2, 3), isr=(2, 3), leader=2, leader_epoch=1, partition_epoch=1),
        el.PartitionChangeRecord(topic="a", partition=99, replicas=(1, 2, 3), isr=(2,), leader=2, leader_epoch=1, partition_epoch=1),  # no such partition: ignored
        el.PartitionChangeRecord(topic="nope", partition=0, replicas=(1, 2, 3), isr=(1,), leader=1, leader_epoch=1, partition_epoch=1),  # no such topic: ignored
        *md.create_topic(image, "b", 7, 2, {}, "idb"),
        el.PartitionChangeRecord(topic="a", partition=3, replicas=(1, 2, 3), isr=(3,), leader=3, leader_epoch=2, partition_epoch=2),
        md.DeleteTopic(name="b"),
        el.PartitionChangeRecord(topic="b", partition=0, replicas=(1, 2, 3), isr=(1,), leader=1, leader_epoch=1, partition_epoch=1),  # after its deletion: ignored
    ]
    one_by_one = image
    for r in records:
        one_by_one = md.apply(one_by_one, r)
    replayed = md.replay(records, image)
    assert replayed == one_by_one
    assert replayed.offset == image.offset + len(records)
    assert replayed.topics["a"].partitions[3].leader == 3
    assert replayed.topics["a"].partitions[3].partition_epoch == 2
    assert image.topics == {}  # the image replayed from is unchanged


def test_encoding_records_skips_dataclasses_asdict_and_round_trips(monkeypatch):
    """Issue #12: ``asdict``'s deep copies made a 10,000-partition topic's Raft entry take
    seconds to encode on the controller's thread; plain records take the shallow path and
    encode to the same bytes."""
    import dataclasses

    from rillet.coordinator import metadata as md

    records = [
        md.CreateTopic(name="t", topic_id="id", configs=(("a", "1"),)),
        *(md.PartitionRecord(topic="t", partition=p, replicas=(1, 2, 3), isr=(1, 2, 3),
                             leader=1) for p in range(3)),
        md.SetConfig(topic="t", name="retention.ms", value=None),
    ]
    expected = json.dumps(
        [{"type": type(r).__name__, **dataclasses.asdict(r)} for r in records],
        separators=(",", ":"),
    ).encode()

    def no_asdict(_record):
        raise AssertionError("asdict called for a plain record")

    monkeypatch.setattr(md, "asdict", no_asdict)
    payload = md.encode_records(records)
    assert payload == expected
    assert md.decode_records(payload) == records
