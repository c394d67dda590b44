"""What one broker must do when the image changes (coordinator/control/delta.py)."""

from __future__ import annotations

from rillet.coordinator import election as el
from rillet.coordinator import metadata as md
from rillet.coordinator.control.delta import MOVED, local_changes


def _cluster(*brokers: int) -> md.MetadataImage:
    image = md.MetadataImage()
    for b in brokers:
        image = md.replay(md.register_broker(image, b, "h", 9000 + b), image)
    return image


def _with_topic(image, name, partitions, rf, topic_id):
    return md.replay(md.create_topic(image, name, partitions, rf, {}, topic_id), image)


def test_new_replicas_are_created_and_a_leader_change_reaches_the_hosted_ones() -> None:
    before = _cluster(1, 2)
    after = _with_topic(before, "t", 2, 2, "id-1")
    ch = local_changes(before, after, 1, hosted=set())
    assert [(t, p) for t, p, _ in ch.creates] == [("t", 0), ("t", 1)]
    assert not ch.deletes and not ch.changed and not ch.reconfigured
    hosted = {("t", 0), ("t", 1)}
    assert not local_changes(after, after, 1, hosted)  # nothing changed: nothing to do
    state = el.PartitionState.from_info(after.partition("t", 0))
    moved = el.preferred_leader_election("t", 0, state, [1, 2])  # already preferred
    assert moved.record is None
    fenced = md.replay(md.fence_broker(after, 1), after)
    ch = local_changes(after, fenced, 2, hosted)
    assert {p for _, p, _ in ch.changed} == {0, 1}  # leaders and ISRs moved
    assert all(info.leader == 2 for _, _, info in ch.changed)


def test_deleted_recreated_and_moved_partitions_are_deleted_then_recreated() -> None:
    image = _with_topic(_cluster(1, 2, 3), "t", 1, 2, "id-1")
    hosted = {("t", 0)}
    gone = md.replay(md.delete_topic(image, "t"), image)
    assert local_changes(image, gone, 1, hosted).deletes == (("t", 0, "id-1"),)
    again = _with_topic(gone, "t", 1, 2, "id-2")
    ch = local_changes(image, again, 1, hosted)  # both in one step: old out, new in
    assert ch.deletes == (("t", 0, "id-1"),) and [(t, p) for t, p, _ in ch.creates] == [("t", 0)]
    state = el.PartitionState.from_info(image.partition("t", 0))
    others = [b for b in (1, 2, 3) if b not in state.replicas] + [
        b for b in state.replicas if b != 1
    ]
    away = el.PartitionChangeRecord(
        topic="t",
        partition=0,
        replicas=tuple(others[:2]),
        isr=tuple(others[:2]),
        leader=others[0],
        leader_epoch=state.leader_epoch + 1,
        partition_epoch=state.partition_epoch + 1,
    )
    moved = md.apply(image, away)
    ch = local_changes(image, moved, 1, hosted)
    assert ch.deletes == (("t", 0, MOVED),) and not ch.creates and not ch.changed


def test_a_config_change_reconfigures_and_updates_the_hosted_replicas() -> None:
    image = _with_topic(_cluster(1), "t", 2, 1, "id-1")
    changed = md.replay(md.alter_configs(image, "t", [("min.insync.replicas", "1")]), image)
    ch = local_changes(image, changed, 1, {("t", 0)})
    assert ch.reconfigured == ("t",)
    assert [(t, p) for t, p, _ in ch.changed] == [("t", 0)]  # only the hosted one
    assert [(t, p) for t, p, _ in ch.creates] == [("t", 1)]  # the other is not hosted yet
