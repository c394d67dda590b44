"""The controller's decisions (coordinator/control/): records, outcomes and notes for each
request, decided against an image with no actor, clock or socket."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from rillet.coordinator import metadata as md
from rillet.coordinator.control import brokers as cb
from rillet.coordinator.control import partitions as cp
from rillet.coordinator.control import topics as ct

from .fakes import Beat


@dataclass
class NewTopic:
    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: dict = None

    def __post_init__(self):
        self.configs = self.configs or {}


def _cluster(*brokers: int) -> md.MetadataImage:
    image = md.MetadataImage()
    for b in brokers:
        image = md.replay(
            md.register_broker(
                image,
                b,
                "127.0.0.1",
                9000,
                incarnation="a",
                internal_host="127.0.0.1",
                internal_port=9100,
            ),
            image,
        )
    return image


def _reject_bad(configs) -> None:
    if "bogus" in configs:
        raise ValueError("bogus: unknown topic config")


def _create(image, *topics, validate_only=False):
    ids = iter(f"id-{i}" for i in range(100))
    return ct.create_topics(
        image,
        topics,
        validate_only=validate_only,
        default_partitions=2,
        default_replication_factor=3,
        new_topic_id=lambda: next(ids),
        validate_configs=_reject_bad,
    )


def test_create_topics_decides_each_item_against_the_image_the_earlier_ones_leave() -> None:
    image = _cluster(1, 2, 3)
    r = _create(image, NewTopic("a"), NewTopic("a"), NewTopic("b", configs={"bogus": "1"}))
    assert [(o.name, o.error) for o in r.response] == [
        ("a", "NONE"),
        ("a", "TOPIC_ALREADY_EXISTS"),
        ("b", "INVALID_CONFIG"),
    ]
    first = r.response[0]
    assert (first.num_partitions, first.replication_factor, first.topic_id) == (2, 3, "id-0")
    after = md.replay(r.records, image)
    assert sorted(after.topics) == ["a"] and len(after.topics["a"].partitions) == 2
    assert "bogus" in r.response[2].message
    assert [n.text for n in r.notes] == [
        "creating topic a with 2 partition(s), replication factor 3"
    ]


def test_validate_only_answers_without_records() -> None:
    r = _create(_cluster(1, 2, 3), NewTopic("a", 4, 1), validate_only=True)
    assert r.records == [] and r.response[0].error == "NONE"
    assert _create(_cluster(1), NewTopic("a", 1, 3)).response[0].error == (
        "INVALID_REPLICATION_FACTOR"
    )


def test_delete_partitions_and_configs() -> None:
    image = md.replay(_create(_cluster(1, 2, 3), NewTopic("a")).records, _cluster(1, 2, 3))

    @dataclass
    class Grow:
        name: str
        count: int

    grow = ct.create_partitions(
        image, [Grow("a", 5), Grow("a", 1), Grow("x", 3)], validate_only=False
    )
    assert [o.error for o in grow.response] == [
        "NONE",
        "INVALID_PARTITIONS",
        "UNKNOWN_TOPIC_OR_PARTITION",
    ]
    assert len(md.replay(grow.records, image).topics["a"].partitions) == 5

    @dataclass
    class Change:
        name: str
        op: int
        value: str | None

    @dataclass
    class Resource:
        resource_type: int
        resource_name: str
        configs: list

    alter = ct.alter_configs(
        image,
        [
            Resource(ct.RESOURCE_TOPIC, "a", [Change("retention.ms", ct.OP_SET, "1000")]),
            Resource(ct.RESOURCE_TOPIC, "a", [Change("bogus", ct.OP_SET, "1")]),
            Resource(4, "1", [Change("retention.ms", ct.OP_SET, "1")]),  # a broker
            Resource(ct.RESOURCE_TOPIC, "a", [Change("retention.ms", ct.OP_SET, None)]),
        ],
        validate_only=False,
        validate_configs=_reject_bad,
    )
    assert [o.error for o in alter.response] == [
        "NONE",
        "INVALID_CONFIG",
        "INVALID_CONFIG",
        "INVALID_CONFIG",
    ]
    assert "broker configs are not supported here" in alter.response[2].message
    assert md.replay(alter.records, image).topics["a"].configs == {"retention.ms": "1000"}

    gone = ct.delete_topics(image, ["a", "a", "nope"])
    assert [o.error for o in gone.response] == [
        "NONE",
        "UNKNOWN_TOPIC_OR_PARTITION",
        "UNKNOWN_TOPIC_OR_PARTITION",
    ]
    assert md.replay(gone.records, image).topics == {}


def test_producer_ids_are_handed_out_once() -> None:
    image = _cluster(1)
    first = ct.init_producer_id(image)
    image = md.replay(first.records, image)
    assert ct.init_producer_id(image).response.producer_id == first.response.producer_id + 1


def test_heartbeats_register_unfence_and_fence_a_broker() -> None:
    image = md.MetadataImage()
    hb = cb.BrokerHeartbeats(session_timeout_ms=1000)
    beat = hb.heartbeat(image, Beat(1), now_ms=0, applied_index=0)
    assert beat.fenced and beat.action == cb.REGISTER
    image = md.replay(hb.register(image, Beat(1), unclean_default=False).records, image)
    assert image.brokers[1].fenced
    # unfenced only once it has applied the log as far as it stood at its first fenced beat
    assert hb.heartbeat(image, Beat(1), now_ms=10, applied_index=7).action is None
    beat = hb.heartbeat(image, Beat(1, metadata_offset=7), now_ms=20, applied_index=9)
    assert beat.action == cb.UNFENCE
    image = md.replay(hb.unfence(image, 1, unclean_default=False).records, image)
    assert image.live_brokers() == [1]
    assert hb.heartbeat(image, Beat(1), now_ms=30, applied_index=9) == cb.Beat()
    # silence past the session: expired, and fenced unless it came back meanwhile
    assert hb.expired(image, now_ms=1030) == [] and hb.expired(image, now_ms=1031) == [1]
    assert hb.fence(image, 1, now_ms=1031, unclean_default=False).records[0] == md.FenceBroker(
        broker_id=1
    )
    hb.heartbeat(image, Beat(1), now_ms=1031, applied_index=9)
    assert hb.fence(image, 1, now_ms=1032, unclean_default=False).records == []


def test_a_new_incarnation_retires_the_old_one() -> None:
    image = _cluster(1, 2, 3)
    image = md.replay(_create(image, NewTopic("t", 1, 3)).records, image)
    hb = cb.BrokerHeartbeats(session_timeout_ms=1000)
    new = Beat(1, incarnation="b", clean_shutdown=False)
    assert hb.heartbeat(image, new, now_ms=0, applied_index=0).action == cb.REGISTER
    result = hb.register(image, new, unclean_default=False)
    assert isinstance(result.records[0], md.FenceBroker)
    assert any("UNCLEAN shutdown" in n.text for n in result.notes)
    image = md.replay(result.records, image)
    assert image.partition("t", 0).leader != 1
    late = hb.heartbeat(image, Beat(1, incarnation="a"), now_ms=1, applied_index=0)
    assert late.error == "STALE_BROKER_EPOCH"
    assert hb.register(image, Beat(1, incarnation="a"), unclean_default=False).records == []


def test_a_late_beat_of_an_older_unregistered_process_does_not_lock_out_the_new_one() -> None:
    """Found by the replication simulator: process 1 of broker 1 died before registering,
    process 2 registered, then process 1's heartbeat arrived. It used to register process 1
    and retire process 2, the live one, which then got STALE_BROKER_EPOCH forever."""
    image = _cluster(1, 2, 3)  # (registered as incarnation "a": no start sequence)
    hb = cb.BrokerHeartbeats(session_timeout_ms=1000)
    two = Beat(1, incarnation="0002-f00d", clean_shutdown=False)
    assert hb.heartbeat(image, two, now_ms=0, applied_index=0).action == cb.REGISTER
    image = md.replay(hb.register(image, two, unclean_default=False).records, image)
    one = Beat(1, incarnation="0001-beef", clean_shutdown=False)
    assert hb.heartbeat(image, one, now_ms=1, applied_index=0).error == "STALE_BROKER_EPOCH"
    assert hb.register(image, one, unclean_default=False).records == []
    beat = hb.heartbeat(
        image,
        Beat(1, incarnation="0002-f00d", metadata_offset=99),
        now_ms=2,
        applied_index=image.offset,
    )
    assert beat.error == "NONE" and beat.action == cb.UNFENCE
    three = Beat(1, incarnation="0003-cafe")  # a later restart still registers at once
    assert hb.heartbeat(image, three, now_ms=3, applied_index=0).action == cb.REGISTER
    assert cb.older("7-x", "10-y") and not cb.older("a", "10-y") and not cb.older("10", "9")


def test_alter_partition_and_damage() -> None:
    image = _cluster(1, 2, 3)
    image = md.replay(_create(image, NewTopic("t", 1, 3)).records, image)
    p = image.partition("t", 0)
    shrink = cp.alter_partition(
        image,
        topic="t",
        partition=0,
        broker_id=p.leader,
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch,
        new_isr=[p.leader],
        new_isr_incarnations=["a"],
        broker_incarnation="a",
    )
    assert shrink.response.error == "NONE" and shrink.records[0].isr == (p.leader,)
    stale = cp.alter_partition(
        image,
        topic="t",
        partition=0,
        broker_id=p.leader,
        leader_epoch=p.leader_epoch,
        partition_epoch=p.partition_epoch + 5,
        new_isr=[p.leader],
        broker_incarnation="a",
    )
    assert stale.response.error == "INVALID_UPDATE_VERSION" and stale.records == []
    image = md.replay(shrink.records, image)
    # the only in-sync replica is damaged: offline, with a warning, not an unclean election
    dmg = cp.replica_damage(
        image, topic="t", partition=0, broker_id=p.leader, offset=42, unclean_default=False
    )
    assert dmg.records and dmg.records[0].leader == -1
    assert dmg.notes[0].level == "warning" and "offset 42" in dmg.notes[0].text
    image = md.replay(dmg.records, image)
    assert cp.elect_offline(image, unclean_default=False).records == []
    assert cp.elect_offline(image, unclean_default=True).records  # unclean election allowed
    unknown = cp.replica_damage(
        image, topic="nope", partition=0, broker_id=1, offset=0, unclean_default=False
    )
    assert unknown.response.error == "UNKNOWN_TOPIC_OR_PARTITION"


def test_elections_and_reassignment() -> None:
    image = _cluster(1, 2, 3)
    image = md.replay(_create(image, NewTopic("t", 3, 2)).records, image)

    @dataclass
    class Move:
        topic: str
        partition: int
        replicas: tuple | None

    everyone = cp.elect_leaders(image, None)
    assert everyone.records == [] and everyone.response == []  # all leaders preferred already
    r = cp.reassign(image, [Move("t", 0, (3, 1)), Move("t", 9, (1, 2)), Move("t", 1, None)])
    assert [o.error for o in r.response] == [
        "NONE",
        "UNKNOWN_TOPIC_OR_PARTITION",
        "NO_REASSIGNMENT_IN_PROGRESS",
    ]
    assert r.records and "reassignment" in r.notes[0].text
    assert cp.auto_rebalance(image).records == []


@pytest.mark.parametrize("name", ["NONE", "STALE_BROKER_EPOCH", "INVALID_UPDATE_VERSION"])
def test_every_error_name_the_cores_use_has_a_wire_code(name) -> None:
    from rillet.transport import protocol as P

    assert P.code_of(name) == P.ErrorCode[name]
    assert P.code_of("NO_SUCH_ERROR") == P.ErrorCode.UNKNOWN_SERVER_ERROR
