"""Incremental reconciliation of one member towards its target assignment (revoke before assign).

This module owns the member state machine. Legal transitions, as data in
``MEMBER_TRANSITIONS`` (from-state, to-state) -> how the member epoch may change:

========================  ========================  =====================================
from                      to                        member epoch
========================  ========================  =====================================
STABLE                    STABLE                    kept, or raised to the target epoch
STABLE                    UNREVOKED_PARTITIONS      kept (partitions to give up first)
STABLE                    UNRELEASED_PARTITIONS     raised to the target epoch
UNREVOKED_PARTITIONS      UNREVOKED_PARTITIONS      kept (still owns a revoked partition)
UNREVOKED_PARTITIONS      STABLE                    raised to the target epoch
UNREVOKED_PARTITIONS      UNRELEASED_PARTITIONS     raised to the target epoch
UNRELEASED_PARTITIONS     STABLE                    target epoch
UNRELEASED_PARTITIONS     UNRELEASED_PARTITIONS     target epoch
UNRELEASED_PARTITIONS     UNREVOKED_PARTITIONS      kept
========================  ========================  =====================================

and, for every transition (checked by :func:`check_transition`):

* revoke before assign: a member entering or staying in UNREVOKED_PARTITIONS gets no new
  partition (``assigned`` only shrinks);
* a partition newly given to a member is owned by no other member (``assigned`` or
  ``pending_revocation`` of anyone else), so no partition is ever owned twice;
* the member epoch never goes down and never passes the target assignment epoch.

A member's state moves only in its own heartbeat: the coordinator cannot know what a member
owns until it says so. A violation raises :class:`IllegalTransition`; nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .errors import IllegalTransition
from .model import ConsumerGroupMember, MemberState, TopicPartition

S, R, U = (
    MemberState.STABLE,
    MemberState.UNREVOKED_PARTITIONS,
    MemberState.UNRELEASED_PARTITIONS,
)

KEEP, TARGET, KEEP_OR_TARGET = "keep", "target", "keep-or-target"

MEMBER_TRANSITIONS: dict[tuple[MemberState, MemberState], str] = {
    (S, S): KEEP_OR_TARGET,
    (S, R): KEEP,
    (S, U): TARGET,
    (R, R): KEEP,
    (R, S): TARGET,
    (R, U): TARGET,
    (U, S): TARGET,
    (U, U): TARGET,
    (U, R): KEEP,
}


def reconcile(
    member: ConsumerGroupMember,
    *,
    target_epoch: int,
    target: frozenset[TopicPartition],
    owned: frozenset[TopicPartition] | None,
    owners: Mapping[TopicPartition, str],
) -> ConsumerGroupMember:
    """The member's next state, or the member itself if it cannot move yet.

    ``owned`` is what the member reported owning in this heartbeat (None: unchanged, which
    counts as still owning everything it was asked to revoke); ``owners`` maps each
    partition to the member owning it in the coordinator's view.
    """
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        if owned is None or owned & member.pending_revocation:
            return member
        return _next(member, target_epoch, target, owned, owners)
    if member.state is MemberState.STABLE and member.member_epoch == target_epoch:
        return member
    return _next(member, target_epoch, target, owned, owners)


def _next(
    member: ConsumerGroupMember,
    target_epoch: int,
    target: frozenset[TopicPartition],
    owned: frozenset[TopicPartition] | None,
    owners: Mapping[TopicPartition, str],
) -> ConsumerGroupMember:
    keep = member.assigned & target
    revoke = member.assigned - target
    wanted = target - keep
    free = frozenset(tp for tp in wanted if owners.get(tp, member.member_id) == member.member_id)
    if revoke and (owned is None or owned & revoke):
        return replace(
            member,
            state=MemberState.UNREVOKED_PARTITIONS,
            assigned=keep,
            pending_revocation=revoke,
        )
    return replace(
        member,
        state=MemberState.UNRELEASED_PARTITIONS if wanted - free else MemberState.STABLE,
        member_epoch=target_epoch,
        previous_member_epoch=(
            member.member_epoch
            if target_epoch != member.member_epoch
            else member.previous_member_epoch
        ),
        assigned=keep | free,
        pending_revocation=frozenset(),
    )


def check_transition(
    old: ConsumerGroupMember,
    new: ConsumerGroupMember,
    *,
    target_epoch: int,
    owners: Mapping[TopicPartition, str],
    group_id: str = "",
) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` obeys the table and invariants."""

    def illegal(why: str) -> IllegalTransition:
        return IllegalTransition(
            f"{old.state} -> {new.state} (epoch {old.member_epoch} -> {new.member_epoch}, "
            f"target epoch {target_epoch}): {why}",
            group_id=group_id,
            member_id=old.member_id,
        )

    rule = MEMBER_TRANSITIONS.get((old.state, new.state))
    if rule is None:
        raise illegal("no such transition")
    changed = new.member_epoch != old.member_epoch
    if rule == KEEP and changed:
        raise illegal("the member epoch must be kept")
    if rule == TARGET and new.member_epoch != target_epoch:
        raise illegal("the member epoch must become the target epoch")
    if changed and new.member_epoch != target_epoch:
        raise illegal("a member epoch may only move to the target epoch")
    if old.member_epoch >= 0 and new.member_epoch < old.member_epoch:
        raise illegal("member epochs never go down")
    if new.state is MemberState.UNREVOKED_PARTITIONS and not new.assigned <= old.assigned:
        raise illegal("a member that must revoke gets no new partitions")
    gained = new.owned - old.owned
    stolen = gained and {tp for tp in gained if owners.get(tp, new.member_id) != new.member_id}
    if stolen:
        raise illegal(f"partitions still owned by another member: {sorted(stolen)}")
