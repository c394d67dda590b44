"""Kafka's CLASSIC group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup), pure.

Old Kafka clients (librdkafka, kafka-python, aiokafka, kafkajs, the Java client before
KIP-848) pick the group's assignment client-side: every member sends JoinGroup with the
protocols (assignors) it supports; the coordinator waits until every known member has
(re)joined or the rebalance timeout passes, picks the protocol all members support, bumps
the generation and answers every JoinGroup, the leader's with all members' metadata. The
leader computes the assignment and sends it in its SyncGroup; the coordinator hands each
member its part. Heartbeats answer REBALANCE_IN_PROGRESS while a rebalance runs, which
makes the members rejoin.

A :class:`ClassicGroup` is one group's state machine (Kafka's names:
Empty -> PreparingRebalance -> CompletingRebalance -> Stable, and Dead once deleted). It
is owned by one actor and mutated by its methods; a method that raises a
:class:`~.errors.GroupError` has changed nothing. Time comes in as ``now_ms`` and new
member ids as arguments (no clock, no randomness). Requests that must wait (a JoinGroup
until the rebalance completes, a follower's SyncGroup until the leader's) are parked in
the group; every method returns the replies to deliver now as ``[(member_id, reply)]``,
which may include replies to earlier, parked requests. :meth:`ClassicGroup.tick` expires
sessions and rebalance deadlines.

A group id is either classic or KIP-848 (``consumer``), never both: see
:func:`check_kind`. :meth:`ClassicGroup.to_record` / :meth:`ClassicGroup.from_record` are
the group's metadata record (Kafka's GroupMetadataValue) for ``__consumer_offsets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from .errors import (
    FencedInstanceIdError,
    GroupIdNotFoundError,
    GroupMaxSizeReachedError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from .messages import OffsetCommitRequest


class ClassicState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True)
class ClassicConfig:
    """Broker keys, Kafka's names and defaults."""

    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1800000  # group.max.session.timeout.ms
    initial_rebalance_delay_ms: int = 3000  # group.initial.rebalance.delay.ms
    max_size: int = 2**31 - 1  # group.max.size


@dataclass
class ClassicMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]  # (name, metadata), in the member's preference order
    assignment: bytes = b""
    session_deadline_ms: int = 0
    awaiting_join: bool = False  # a JoinGroup is parked for the current rebalance
    awaiting_sync: bool = False

    def metadata(self, protocol: str) -> bytes:
        return next((m for name, m in self.protocols if name == protocol), b"")


@dataclass(frozen=True)
class JoinResponse:
    error: int  # 0, or MEMBER_ID_REQUIRED (79) with member_id set
    generation_id: int
    protocol_type: str
    protocol_name: str
    leader: str
    member_id: str
    members: tuple[tuple[str, str | None, bytes], ...] = ()  # the leader's: (id, instance, metadata)
    skip_assignment: bool = False


@dataclass(frozen=True)
class SyncResponse:
    error: int
    protocol_type: str
    protocol_name: str
    assignment: bytes


Replies = list[tuple[str, object]]


def check_kind(*, classic_exists: bool, consumer_exists: bool, classic_request: bool) -> None:
    """A group id is one kind: JoinGroup & co. on a KIP-848 group, or a ConsumerGroupHeartbeat
    on a classic group, fail as Kafka answers them."""
    if classic_request and consumer_exists:
        raise InconsistentGroupProtocolError("the group id belongs to a KIP-848 consumer group")
    if not classic_request and classic_exists:
        raise GroupIdNotFoundError("the group id belongs to a classic group")


@dataclass
class ClassicGroup:
    group_id: str
    config: ClassicConfig = field(default_factory=ClassicConfig)
    state: ClassicState = ClassicState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, ClassicMember] = field(default_factory=dict)
    pending_members: dict[str, int] = field(default_factory=dict)  # member id -> deadline
    static_members: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    rebalance_deadline_ms: int = 0
    join_not_before_ms: int = 0  # the initial rebalance delay of a group that was empty

    # -- JoinGroup -------------------------------------------------------------------

    def join(self, *, member_id: str, group_instance_id: str | None, client_id: str,
             client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int,
             protocol_type: str, protocols: Sequence[tuple[str, bytes]],
             require_known_member_id: bool, new_member_id: str, now_ms: int) -> Replies:
        """``new_member_id`` is used when the member has none (the caller makes it unique,
        Kafka's ``client_id-uuid``). Raises with nothing changed, or returns the replies;
        the requester's own reply, if it is due now, is under ``member_id or new_member_id``
        (MEMBER_ID_REQUIRED is such a reply, with the id to rejoin with)."""
        if not self.group_id:
            raise InvalidGroupIdError("empty group id")
        if self.state is ClassicState.DEAD:
            raise UnknownMemberIdError("the group was deleted", group_id=self.group_id)
        cfg = self.config
        if not cfg.min_session_timeout_ms <= session_timeout_ms <= cfg.max_session_timeout_ms:
            raise InvalidSessionTimeoutError(
                f"session.timeout.ms {session_timeout_ms} outside "
                f"[{cfg.min_session_timeout_ms}, {cfg.max_session_timeout_ms}]",
                group_id=self.group_id)
        protocols = [(str(n), bytes(m)) for n, m in protocols]
        if not protocol_type or not protocols:
            raise InconsistentGroupProtocolError("no protocol type or protocols",
                                                 group_id=self.group_id)
        if self.members and not self._supports(protocol_type, protocols, member_id):
            raise InconsistentGroupProtocolError(
                f"protocols {[n for n, _ in protocols]} ({protocol_type}) share none with the "
                "group's members", group_id=self.group_id, member_id=member_id)
        rebalance_timeout_ms = rebalance_timeout_ms if rebalance_timeout_ms > 0 else session_timeout_ms
        args = dict(client_id=client_id, client_host=client_host,
                    session_timeout_ms=session_timeout_ms,
                    rebalance_timeout_ms=rebalance_timeout_ms, protocol_type=protocol_type,
                    protocols=protocols)
        if not member_id:
            if group_instance_id is not None and group_instance_id in self.static_members:
                return self._replace_static(group_instance_id, new_member_id, args, now_ms)
            if group_instance_id is None and require_known_member_id:
                self._check_size(extra=1)
                self.pending_members[new_member_id] = now_ms + session_timeout_ms
                return [(new_member_id, JoinResponse(MemberIdRequiredError.code, -1, "", "",
                                                     "", new_member_id))]
            self._check_size(extra=1)
            return self._add_member(new_member_id, group_instance_id, args, now_ms)
        if member_id in self.pending_members:
            self._check_size(extra=1)
            del self.pending_members[member_id]
            return self._add_member(member_id, group_instance_id, args, now_ms)
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberIdError("not a member", group_id=self.group_id, member_id=member_id)
        if member.group_instance_id != group_instance_id:
            raise FencedInstanceIdError("the instance id does not match the member",
                                        group_id=self.group_id, member_id=member_id)
        changed = member.protocols != protocols or member.protocol_type != protocol_type
        for k, v in args.items():
            setattr(member, k, v)
        member.session_deadline_ms = now_ms + session_timeout_ms
        if self.state is ClassicState.PREPARING_REBALANCE:
            member.awaiting_join = True
            return self._maybe_complete_join(now_ms)
        if not changed and self.state is ClassicState.COMPLETING_REBALANCE or (
                not changed and self.state is ClassicState.STABLE and member_id != self.leader_id):
            return [(member_id, self._join_response(member_id))]  # a resend: same generation
        member.awaiting_join = True
        self._prepare_rebalance(now_ms)
        return self._maybe_complete_join(now_ms)

    def _supports(self, protocol_type: str, protocols: list[tuple[str, bytes]],
                  member_id: str) -> bool:
        if self.protocol_type is not None and protocol_type != self.protocol_type:
            return False
        names = {n for n, _ in protocols}
        for m in self.members.values():
            if m.member_id != member_id:
                names &= {n for n, _ in m.protocols}
        return bool(names)

    def _check_size(self, extra: int) -> None:
        if len(self.members) + extra > self.config.max_size:
            raise GroupMaxSizeReachedError(f"group.max.size {self.config.max_size} reached",
                                           group_id=self.group_id)

    def _add_member(self, member_id: str, instance_id: str | None, args: dict,
                    now_ms: int) -> Replies:
        member = ClassicMember(member_id=member_id, group_instance_id=instance_id, **args)
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        member.awaiting_join = True
        self.members[member_id] = member
        if instance_id is not None:
            self.static_members[instance_id] = member_id
        if self.protocol_type is None:
            self.protocol_type = member.protocol_type
        self._prepare_rebalance(now_ms)
        return self._maybe_complete_join(now_ms)

    def _replace_static(self, instance_id: str, new_member_id: str, args: dict,
                        now_ms: int) -> Replies:
        """A static member restarted: it takes over its old member id's place (fencing the
        old one's parked requests) and, if nothing changed, keeps its assignment."""
        old_id = self.static_members[instance_id]
        old = self.members.pop(old_id)
        replies: Replies = []
        if old.awaiting_join or old.awaiting_sync:
            replies.append((old_id, FencedInstanceIdError("replaced by a newer instance",
                                                          group_id=self.group_id)))
        changed = old.protocols != args["protocols"]
        member = ClassicMember(member_id=new_member_id, group_instance_id=instance_id,
                               assignment=old.assignment, awaiting_join=old.awaiting_join,
                               **args)
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        self.members[new_member_id] = member
        self.static_members[instance_id] = new_member_id
        if self.leader_id == old_id:
            self.leader_id = new_member_id
        if self.state is ClassicState.STABLE and not changed:
            return replies + [(new_member_id, self._join_response(new_member_id,
                                                                  skip_assignment=True))]
        member.awaiting_join = True
        if self.state is not ClassicState.PREPARING_REBALANCE:
            self._prepare_rebalance(now_ms)
        return replies + self._maybe_complete_join(now_ms)

    def _prepare_rebalance(self, now_ms: int) -> None:
        if self.state is ClassicState.PREPARING_REBALANCE:
            if self.join_not_before_ms:  # a new member during the initial delay extends it
                self.join_not_before_ms = min(now_ms + self.config.initial_rebalance_delay_ms,
                                              self.rebalance_deadline_ms)
            return
        for m in self.members.values():
            if m.awaiting_sync:  # their SyncGroup answers REBALANCE_IN_PROGRESS
                m.awaiting_sync = False
        was_empty = self.state is ClassicState.EMPTY
        self.state = ClassicState.PREPARING_REBALANCE
        timeout = max((m.rebalance_timeout_ms for m in self.members.values()), default=0)
        self.rebalance_deadline_ms = now_ms + timeout
        self.join_not_before_ms = (
            min(now_ms + self.config.initial_rebalance_delay_ms, self.rebalance_deadline_ms)
            if was_empty and self.config.initial_rebalance_delay_ms > 0 else 0)

    def _maybe_complete_join(self, now_ms: int) -> Replies:
        if self.state is not ClassicState.PREPARING_REBALANCE:
            return []
        everyone = all(m.awaiting_join for m in self.members.values()) and not self.pending_members
        if now_ms < self.rebalance_deadline_ms and (
                not everyone or now_ms < self.join_not_before_ms):
            return []
        return self._complete_join()

    def _complete_join(self) -> Replies:
        for mid in [mid for mid, m in self.members.items() if not m.awaiting_join]:
            self._remove(mid)  # did not rejoin within the rebalance timeout
        self.generation_id += 1
        self.join_not_before_ms = 0
        if not self.members:
            self.state, self.protocol_name, self.leader_id = ClassicState.EMPTY, None, None
            self.protocol_type = None
            return []
        self.state = ClassicState.COMPLETING_REBALANCE
        self.protocol_name = self._select_protocol()
        if self.leader_id not in self.members:
            self.leader_id = next(iter(self.members))
        replies: Replies = []
        for mid, m in self.members.items():
            m.awaiting_join, m.awaiting_sync, m.assignment = False, False, b""
            replies.append((mid, self._join_response(mid)))
        return replies

    def _select_protocol(self) -> str:
        """The protocol every member supports that most members prefer (Kafka's vote)."""
        common = set.intersection(*({n for n, _ in m.protocols} for m in self.members.values()))
        votes: dict[str, int] = {}
        for m in self.members.values():
            first = next(n for n, _ in m.protocols if n in common)
            votes[first] = votes.get(first, 0) + 1
        first_member = next(iter(self.members.values()))
        order = [n for n, _ in first_member.protocols if n in common]
        return max(order, key=lambda n: (votes.get(n, 0), -order.index(n)))

    def _join_response(self, member_id: str, skip_assignment: bool = False) -> JoinResponse:
        members: tuple = ()
        if member_id == self.leader_id and not skip_assignment:
            members = tuple((m.member_id, m.group_instance_id, m.metadata(self.protocol_name or ""))
                            for m in self.members.values())
        return JoinResponse(0, self.generation_id, self.protocol_type or "",
                            self.protocol_name or "", self.leader_id or "", member_id, members,
                            skip_assignment)

    # -- SyncGroup, Heartbeat, LeaveGroup -----------------------------------------

    def _member(self, member_id: str, group_instance_id: str | None,
                generation_id: int) -> ClassicMember:
        member = self.members.get(member_id)
        if member is None or self.state in (ClassicState.EMPTY, ClassicState.DEAD):
            if group_instance_id is not None and group_instance_id in self.static_members:
                raise FencedInstanceIdError("replaced by a newer instance",
                                            group_id=self.group_id, member_id=member_id)
            raise UnknownMemberIdError("not a member", group_id=self.group_id, member_id=member_id)
        if member.group_instance_id != group_instance_id:
            raise FencedInstanceIdError("the instance id does not match the member",
                                        group_id=self.group_id, member_id=member_id)
        if generation_id != self.generation_id:
            raise IllegalGenerationError(
                f"generation {generation_id}, the group's is {self.generation_id}",
                group_id=self.group_id, member_id=member_id)
        return member

    def sync(self, *, member_id: str, group_instance_id: str | None, generation_id: int,
             protocol_type: str | None, protocol_name: str | None,
             assignments: Sequence[tuple[str, bytes]], now_ms: int) -> Replies:
        member = self._member(member_id, group_instance_id, generation_id)
        if (protocol_type and protocol_type != self.protocol_type) or (
                protocol_name and protocol_name != self.protocol_name):
            raise InconsistentGroupProtocolError("protocol differs from the group's",
                                                 group_id=self.group_id, member_id=member_id)
        if self.state is ClassicState.PREPARING_REBALANCE:
            raise RebalanceInProgressError("rejoin", group_id=self.group_id, member_id=member_id)
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        if self.state is ClassicState.STABLE:
            return [(member_id, self._sync_response(member))]
        member.awaiting_sync = True
        if member_id != self.leader_id:
            return []
        given = {mid: bytes(a) for mid, a in assignments}
        replies: Replies = []
        self.state = ClassicState.STABLE
        for m in self.members.values():
            m.assignment = given.get(m.member_id, b"")
            if m.awaiting_sync:
                m.awaiting_sync = False
                replies.append((m.member_id, self._sync_response(m)))
        return replies

    def _sync_response(self, m: ClassicMember) -> SyncResponse:
        return SyncResponse(0, self.protocol_type or "", self.protocol_name or "", m.assignment)

    def heartbeat(self, *, member_id: str, group_instance_id: str | None, generation_id: int,
                  now_ms: int) -> None:
        """Returns if all is well; raises REBALANCE_IN_PROGRESS (the session is still renewed)
        when the member must rejoin."""
        member = self._member(member_id, group_instance_id, generation_id)
        member.session_deadline_ms = now_ms + member.session_timeout_ms
        if self.state is ClassicState.PREPARING_REBALANCE:
            raise RebalanceInProgressError("rejoin", group_id=self.group_id, member_id=member_id)

    def leave(self, members: Sequence[tuple[str, str | None]],
              now_ms: int) -> tuple[list[Exception | None], Replies]:
        """LeaveGroup for ``[(member_id, group_instance_id)]`` (v3+ batches; a static member
        may leave by instance id with an empty member id). Returns each one's error (None if
        it left) and the replies it releases."""
        errors: list[Exception | None] = []
        left = False
        for mid, iid in members:
            if not mid and iid is not None:
                mid = self.static_members.get(iid, "")
            m = self.members.get(mid)
            if m is None:
                errors.append(UnknownMemberIdError("not a member", group_id=self.group_id,
                                                   member_id=mid))
            elif iid is not None and m.group_instance_id != iid:
                errors.append(FencedInstanceIdError("instance id mismatch",
                                                    group_id=self.group_id, member_id=mid))
            else:
                self._remove(mid)
                errors.append(None)
                left = True
        if not left:
            return errors, []
        return errors, self._after_removal(now_ms)

    def _remove(self, member_id: str) -> None:
        m = self.members.pop(member_id)
        if m.group_instance_id is not None and self.static_members.get(
                m.group_instance_id) == member_id:
            del self.static_members[m.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)

    def _after_removal(self, now_ms: int) -> Replies:
        if self.state in (ClassicState.STABLE, ClassicState.COMPLETING_REBALANCE):
            replies: Replies = [
                (m.member_id, RebalanceInProgressError("rejoin", group_id=self.group_id))
                for m in self.members.values() if m.awaiting_sync]
            if not self.members:
                self.state, self.generation_id = ClassicState.EMPTY, self.generation_id + 1
                self.protocol_type = self.protocol_name = self.leader_id = None
                return replies
            self._prepare_rebalance(now_ms)
            return replies + self._maybe_complete_join(now_ms)
        if self.state is ClassicState.PREPARING_REBALANCE:
            return self._maybe_complete_join(now_ms)
        return []

    # -- time ------------------------------------------------------------------------

    def tick(self, now_ms: int) -> Replies:
        """Expire sessions, pending member ids and the rebalance deadline."""
        for mid in [mid for mid, dl in self.pending_members.items() if dl <= now_ms]:
            del self.pending_members[mid]
        replies: Replies = []
        expired = [mid for mid, m in self.members.items()
                   if m.session_deadline_ms <= now_ms and not m.awaiting_join]
        for mid in expired:
            self._remove(mid)
        if expired:
            replies += self._after_removal(now_ms)
        if self.state is ClassicState.PREPARING_REBALANCE:
            replies += self._maybe_complete_join(now_ms)
        return replies

    def next_deadline_ms(self) -> int | None:
        """When :meth:`tick` next has something to do (None: nothing scheduled)."""
        times = [m.session_deadline_ms for m in self.members.values() if not m.awaiting_join]
        times += list(self.pending_members.values())
        if self.state is ClassicState.PREPARING_REBALANCE:
            times.append(min(self.rebalance_deadline_ms,
                             max(self.join_not_before_ms, 0) or self.rebalance_deadline_ms))
        return min(times) if times else None

    # -- offsets, describe, records ---------------------------------------------------

    def check_commit(self, *, member_id: str, group_instance_id: str | None,
                     generation_id: int) -> None:
        """An OffsetCommit's member and generation: a member's commit needs the current
        generation; one without a member (generation -1) only an empty group accepts.
        As Kafka: accepted while the group prepares a rebalance (members commit what they
        consumed before they rejoin, e.g. in their revoke callback), REBALANCE_IN_PROGRESS
        while it completes one (the generation is about to change hands)."""
        if generation_id < 0 and not member_id:
            if self.members:
                raise UnknownMemberIdError("the group has members", group_id=self.group_id)
            return
        self._member(member_id, group_instance_id, generation_id)
        if self.state is ClassicState.COMPLETING_REBALANCE:
            raise RebalanceInProgressError("the group is completing a rebalance",
                                           group_id=self.group_id, member_id=member_id)

    def describe(self) -> dict:
        stable = self.state in (ClassicState.STABLE, ClassicState.COMPLETING_REBALANCE)
        return {
            "group_id": self.group_id, "state": self.state.value,
            "protocol_type": self.protocol_type or "", "protocol": self.protocol_name or "",
            "generation_id": self.generation_id, "leader": self.leader_id or "",
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "client_id": m.client_id, "client_host": m.client_host,
                         "metadata": m.metadata(self.protocol_name or "") if stable else b"",
                         "assignment": m.assignment if self.state is ClassicState.STABLE else b""}
                        for m in self.members.values()],
        }

    def to_record(self) -> dict:
        """The group's metadata (Kafka's GroupMetadataValue), written after each generation."""
        return {
            "kind": "classic", "protocol_type": self.protocol_type,
            "generation": self.generation_id, "protocol": self.protocol_name,
            "leader": self.leader_id,
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "client_id": m.client_id, "client_host": m.client_host,
                         "rebalance_timeout_ms": m.rebalance_timeout_ms,
                         "session_timeout_ms": m.session_timeout_ms,
                         "protocol_type": m.protocol_type,
                         "protocols": [[n, md] for n, md in m.protocols],
                         "assignment": m.assignment} for m in self.members.values()],
        }

    @classmethod
    def from_record(cls, group_id: str, record: dict, config: ClassicConfig | None = None,
                    now_ms: int = 0) -> ClassicGroup:
        """The group as a new coordinator loads it: members get a fresh session, and a group
        caught mid-rebalance restarts it (Kafka does the same)."""
        g = cls(group_id, config or ClassicConfig(), generation_id=record["generation"],
                protocol_type=record["protocol_type"], protocol_name=record["protocol"],
                leader_id=record["leader"])
        for r in record["members"]:
            m = ClassicMember(
                member_id=r["member_id"], group_instance_id=r["group_instance_id"],
                client_id=r["client_id"], client_host=r["client_host"],
                rebalance_timeout_ms=r["rebalance_timeout_ms"],
                session_timeout_ms=r["session_timeout_ms"], protocol_type=r["protocol_type"],
                protocols=[(n, bytes(md)) for n, md in r["protocols"]],
                assignment=bytes(r["assignment"]))
            m.session_deadline_ms = now_ms + m.session_timeout_ms
            g.members[m.member_id] = m
            if m.group_instance_id is not None:
                g.static_members[m.group_instance_id] = m.member_id
        g.state = ClassicState.STABLE if g.members else ClassicState.EMPTY
        return g


def classic_commit(group: ClassicGroup | None, req: OffsetCommitRequest) -> OffsetCommitRequest:
    """An OffsetCommit of a classic client (``member_epoch`` carries its generation id) as
    the request the core's offset path stores (:func:`.offsets.commit_offsets`): checked
    against the classic group's member and generation here, then written as a simple commit,
    so a group's committed offsets are the same records whichever protocol committed them
    (they live under the group id, in a consumer group without members)."""
    if group is None:
        if req.member_id or req.member_epoch >= 0:
            raise UnknownMemberIdError("no such classic group", group_id=req.group_id,
                                       member_id=req.member_id)
        return req
    group.check_commit(member_id=req.member_id, group_instance_id=req.instance_id,
                       generation_id=req.member_epoch)
    return replace(req, member_id="", member_epoch=-1, instance_id=None)
