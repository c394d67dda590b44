"""Heartbeats as long polls: when the coordinator may hold a member's answer, and when it must
look at a held heartbeat again. Pure decisions; the actor keeps the held requests and the
clock.

Without this a member hears of a new target assignment only on its next heartbeat
(``group.consumer.heartbeat.interval.ms``, 5 s), so a rebalance that needs a revocation and
then an assignment takes two intervals per step. With it, a member asks with
``max_wait_ms > 0`` and the coordinator answers as soon as there is something to tell:

1. The heartbeat is handled as always (``GroupCoordinator.heartbeat``: records appended,
   session refreshed). If the answer tells the member nothing new — same member epoch as it
   sent, an assignment equal to what it owns, no error — :func:`park_deadline` says how long
   the actor may hold it: ``min(max_wait_ms, heartbeat interval, session timeout / 2)``. A
   join (epoch 0) or a heartbeat without ``owned_partitions`` is never held.
2. After every adopted change of a group, :func:`needs_answer` picks the held heartbeats of
   that group whose member is no longer settled (not Stable at the target assignment epoch,
   or gone). The actor handles each again as if the member had just sent it: a changed
   answer goes out at once (new epoch or assignment, or FENCED / UNKNOWN_MEMBER_ID); an
   unchanged one is held again until its original deadline.
3. At the deadline the actor answers with the last (unchanged) answer; the member then sends
   its next heartbeat at once, so a member keeps about one heartbeat per interval held at the
   coordinator.

Nothing of Kafka's semantics moves: each evaluation is an ordinary heartbeat of the member
with what it reported owning, so revoke-before-assign, epochs and fencing are the core's as
ever. A held heartbeat evaluated again refreshes the member's session at that time, so a
member can outlive its last request by at most the hold (bounded by the heartbeat interval,
far below the session timeout).
"""

from __future__ import annotations

from collections.abc import Iterable

from .messages import ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse
from .model import CoordinatorState, GroupConfig, MemberState


def park_deadline(
    config: GroupConfig,
    request: ConsumerGroupHeartbeatRequest,
    response: ConsumerGroupHeartbeatResponse,
    now_ms: int,
) -> int | None:
    """The time (ms) until which the answer to ``request`` may be held, or None: send it now.

    Example: a Stable member at epoch 7 owning t-0 heartbeats with ``max_wait_ms=5000`` and
    gets (epoch 7, {t-0}) back: nothing new, held until ``now_ms + 5000`` (with the default
    interval). Had the group moved to epoch 8, the answer (epoch 8, ...) goes out at once.
    """
    if request.max_wait_ms <= 0 or request.member_epoch <= 0:
        return None
    if request.owned_partitions is None or response.assignment is None:
        return None
    if response.member_epoch != request.member_epoch:
        return None
    if response.assignment != request.owned_partitions:
        return None
    wait = min(request.max_wait_ms, config.heartbeat_interval_ms, config.session_timeout_ms // 2)
    return now_ms + wait if wait > 0 else None


def needs_answer(state: CoordinatorState, group_id: str, member_id: str) -> bool:
    """True if a held heartbeat of ``member_id``, handled again now, may tell it something:
    the member is gone (its answer is an error), or it is not Stable at the group's target
    assignment epoch (a new target, a revocation, or partitions it waits for)."""
    group = state.groups.get(group_id)
    member = group.members.get(member_id) if group is not None else None
    if member is None:
        return True
    return (member.member_epoch != group.assignment_epoch
            or member.state is not MemberState.STABLE)


def touched_groups(records: Iterable[object]) -> frozenset[str]:
    """The groups that appended ``records`` (from ``Result.records``) changed."""
    return frozenset(r.group_id for r in records)  # type: ignore[attr-defined]
