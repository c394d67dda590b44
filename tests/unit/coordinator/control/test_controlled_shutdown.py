"""Controlled shutdown on the controller (coordinator/control/brokers.py): a heartbeat with
``want_shut_down`` gets the broker fenced at once, its leaderships moved to other ISR members
and itself out of the ISRs, and ``should_shut_down`` once that is in the image."""

from __future__ import annotations

from dataclasses import dataclass

from rillet.coordinator import metadata as md
from rillet.coordinator.control import brokers as cb
from rillet.coordinator.control import topics as ct

from .fakes import Beat


@dataclass
class NewTopic:
    name: str
    num_partitions: int
    replication_factor: int
    configs: dict


def _cluster_with_topic() -> md.MetadataImage:
    image = md.MetadataImage()
    for b in (1, 2, 3):
        image = md.replay(md.register_broker(image, b, "127.0.0.1", 9000, incarnation="a",
                                             internal_host="127.0.0.1", internal_port=9100), image)
    ids = iter(f"id-{i}" for i in range(10))
    result = ct.create_topics(image, [NewTopic("t", 6, 3, {})], validate_only=False,
                              default_partitions=1, default_replication_factor=3,
                              new_topic_id=lambda: next(ids), validate_configs=lambda c: None)
    return md.replay(result.records, image)


def test_want_shut_down_moves_every_leadership_and_then_says_should_shut_down() -> None:
    image = _cluster_with_topic()
    assert any(image.partition("t", p).leader == 1 for p in range(6))
    hb = cb.BrokerHeartbeats(session_timeout_ms=1000)
    beat = hb.heartbeat(image, Beat(1, want_shut_down=True), now_ms=0, applied_index=0)
    assert beat == cb.Beat(action=cb.SHUT_DOWN)  # not yet: the records are to be committed
    result = hb.controlled_shutdown(image, 1)
    assert result.records[0] == md.FenceBroker(broker_id=1)
    assert "controlled shutdown of broker 1" in result.notes[-1].text
    image = md.replay(result.records, image)
    for p in range(6):
        info = image.partition("t", p)
        assert info.leader in (2, 3) and 1 not in info.isr
    beat = hb.heartbeat(image, Beat(1, want_shut_down=True), now_ms=10, applied_index=0)
    assert beat.should_shut_down and beat.action is None
    # fenced and wanting to leave: never unfenced again (its next process registers anew)
    beat = hb.heartbeat(image, Beat(1, metadata_offset=99, want_shut_down=True), now_ms=20,
                        applied_index=0)
    assert beat.action is None
    assert hb.controlled_shutdown(image, 1).records == []  # idempotent
    assert hb.heartbeat(image, Beat(1, incarnation="b"), now_ms=30,
                        applied_index=0).action == cb.REGISTER


def test_the_last_in_sync_replica_is_never_replaced_uncleanly() -> None:
    image = _cluster_with_topic()
    # partition 0's ISR shrinks to its leader alone
    leader = image.partition("t", 0).leader
    hb = cb.BrokerHeartbeats(session_timeout_ms=1000)
    for b in (1, 2, 3):
        if b != leader:
            image = md.replay(hb.controlled_shutdown(image, b).records, image)
    assert list(image.partition("t", 0).isr) == [leader]
    image = md.replay(hb.controlled_shutdown(image, leader).records, image)
    info = image.partition("t", 0)
    assert info.leader == -1 and list(info.isr) == [leader]


def test_an_unregistered_broker_may_leave_at_once() -> None:
    hb = cb.BrokerHeartbeats(session_timeout_ms=1000)
    beat = hb.heartbeat(md.MetadataImage(), Beat(4, want_shut_down=True), now_ms=0,
                        applied_index=0)
    assert beat.should_shut_down and beat.action is None
