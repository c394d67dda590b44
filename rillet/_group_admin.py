"""Consumer-group administration, mixed into :class:`rillet.admin.Admin`.

    admin.list_groups()                                  # [GroupListing("g", "Stable"), ...]
    admin.describe_groups(["g"])["g"].members            # who owns what
    admin.list_consumer_group_offsets("g")               # {TopicPartition: committed offset}
    admin.alter_consumer_group_offsets("g", {tp: 42})    # only while the group is empty
    admin.delete_groups(["g"])
    admin.list_offsets([tp], LATEST)                     # log end offsets (for lag)

Group requests go to the group's coordinator (FindCoordinator; re-found on NOT_COORDINATOR);
ListGroups is asked of every live broker. See docs/consumer-groups.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rillet._membership import CoordinatorLocator, OffsetsClient
from rillet.errors import IllegalStateError, RilletError, error_for_code
from rillet.frozen import frozen
from rillet.records import TopicPartition
from rillet.transport import protocol as p

EARLIEST = p.EARLIEST_TIMESTAMP
LATEST = p.LATEST_TIMESTAMP


@frozen
class GroupListing:
    group_id: str
    state: str


@frozen
class MemberDescription:
    member_id: str
    client_id: str
    host: str
    instance_id: str | None
    member_epoch: int
    member_state: str
    subscribed_topics: tuple[str, ...]
    subscribed_pattern: str | None
    assignment: tuple[TopicPartition, ...]
    target_assignment: tuple[TopicPartition, ...]


@frozen
class ConsumerGroupDescription:
    group_id: str
    state: str
    """Empty, Assigning, Reconciling, Stable or Dead (unknown group)."""
    group_epoch: int
    assignment_epoch: int
    assignor: str
    coordinator: str
    members: tuple[MemberDescription, ...]


def _tps(items: Iterable[p.GroupTopicPartitions]) -> tuple[TopicPartition, ...]:
    return tuple(sorted(TopicPartition(t.topic, x) for t in items for x in t.partitions))


class GroupAdminMixin:
    """Needs ``self._client`` (a NetworkClient) and ``self.config``."""

    def _locator(self, group_id: str) -> CoordinatorLocator:
        if not group_id:
            raise IllegalStateError("a group id must not be empty")
        return CoordinatorLocator(self._client, group_id, self.config.retry_backoff_ms / 1000)

    def _timeout_s(self) -> float:
        return self.config.request_timeout_ms / 1000

    def list_groups(self, states: Iterable[str] | None = None) -> list[GroupListing]:
        """Every consumer group of the cluster (asks each live broker for the groups it
        coordinates). ``states``: only groups in these states (Kafka's names)."""
        view = self._client.refresh_metadata(())
        req = p.ListGroupsRequest(states_filter=tuple(states or ()))
        found: dict[str, GroupListing] = {}
        addresses = list(view.brokers.values()) or list(self._client.bootstrap)
        for address in addresses:
            r = self._client.call(address, req)
            if r.error_code:
                raise error_for_code(r.error_code, f"ListGroups on {address}")
            for g in r.groups:
                if g.protocol_type == "consumer":  # share groups: list_share_groups
                    found[g.group_id] = GroupListing(g.group_id, g.group_state)
        return [found[k] for k in sorted(found)]

    def describe_groups(self, group_ids: Iterable[str]) -> dict[str, ConsumerGroupDescription]:
        out: dict[str, ConsumerGroupDescription] = {}
        for gid in group_ids:
            locator = self._locator(gid)
            r = locator.call(p.ConsumerGroupDescribeRequest(group_ids=(gid,)), self._timeout_s())
            g = r.groups[0]
            if g.error_code:
                raise error_for_code(g.error_code, g.error_message or f"group {gid!r}")
            out[gid] = ConsumerGroupDescription(
                group_id=gid, state=g.group_state, group_epoch=g.group_epoch,
                assignment_epoch=g.assignment_epoch, assignor=g.assignor_name,
                coordinator=locator._address or "",
                members=tuple(MemberDescription(
                    member_id=m.member_id, client_id=m.client_id, host=m.client_host,
                    instance_id=m.instance_id, member_epoch=m.member_epoch,
                    member_state=m.member_state,
                    subscribed_topics=tuple(m.subscribed_topic_names),
                    subscribed_pattern=m.subscribed_topic_regex,
                    assignment=_tps(m.assignment), target_assignment=_tps(m.target_assignment))
                    for m in sorted(g.members, key=lambda m: m.member_id)))
        return out

    def delete_groups(self, group_ids: Iterable[str], *, raise_errors: bool = True
                      ) -> dict[str, RilletError | None]:
        """Delete groups without members (NON_EMPTY_GROUP otherwise) and their offsets."""
        results: dict[str, RilletError | None] = {}
        for gid in group_ids:
            r = self._locator(gid).call(p.DeleteGroupsRequest(groups_names=(gid,)),
                                        self._timeout_s())
            res = r.results[0]
            results[gid] = None if not res.error_code else error_for_code(
                res.error_code, res.error_message or f"group {gid!r}")
        if raise_errors:
            for error in results.values():
                if error is not None:
                    raise error
        return results

    def list_consumer_group_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, int]:
        """Committed offsets of the group (partitions without one are left out)."""
        got = OffsetsClient(self._locator(group_id), self.config).committed(partitions)
        return {tp: o for tp, o in sorted(got.items()) if o is not None}

    def alter_consumer_group_offsets(self, group_id: str,
                                     offsets: Mapping[TopicPartition, int]) -> None:
        """Set committed offsets; refused (UNKNOWN_MEMBER_ID) while the group has members."""
        try:
            OffsetsClient(self._locator(group_id), self.config).commit(
                {TopicPartition(*tp): int(o) for tp, o in offsets.items()})
        except RilletError as exc:
            if exc.code == p.ErrorCode.UNKNOWN_MEMBER_ID:
                raise IllegalStateError(
                    f"group {group_id!r} has active members: stop its consumers first") from None
            raise

    def delete_consumer_group_offsets(self, group_id: str,
                                      partitions: Iterable[TopicPartition]) -> None:
        by_topic: dict[str, list[int]] = {}
        for tp in sorted({TopicPartition(*tp) for tp in partitions}):
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        req = p.OffsetDeleteRequest(group_id=group_id, topics=tuple(
            p.GroupTopicPartitions(topic=t, partitions=tuple(ps)) for t, ps in by_topic.items()))
        r = self._locator(group_id).call(req, self._timeout_s())
        codes = [r.error_code] + [x.error_code for t in r.topics for x in t.partitions]
        code = next((c for c in codes if c), 0)
        if code:
            raise error_for_code(code, r.error_message or f"group {group_id!r}")

    def list_offsets(self, partitions: Iterable[TopicPartition], timestamp: int = LATEST
                     ) -> dict[TopicPartition, int]:
        """ListOffsets per partition leader: ``LATEST`` (log end offset), ``EARLIEST`` (log
        start offset) or a timestamp in ms (-1 where no record is that recent)."""
        tps = sorted({TopicPartition(*tp) for tp in partitions})
        for topic in {tp.topic for tp in tps}:
            self._client.wait_for_topic(topic, self.config.request_timeout_ms)
        by_leader: dict[str, list[TopicPartition]] = {}
        for tp in tps:
            address = self._client.leader_address(tp.topic, tp.partition)
            if address is None:
                raise error_for_code(p.ErrorCode.LEADER_NOT_AVAILABLE, f"{tp[0]}-{tp[1]}")
            by_leader.setdefault(address, []).append(tp)
        out: dict[TopicPartition, int] = {}
        for address, group in by_leader.items():
            topics: dict[str, list[p.ListOffsetsPartition]] = {}
            for tp in group:
                topics.setdefault(tp.topic, []).append(
                    p.ListOffsetsPartition(partition=tp.partition, timestamp=timestamp))
            r = self._client.call(address, p.ListOffsetsRequest(topics=tuple(
                p.ListOffsetsTopic(name=t, partitions=tuple(ps)) for t, ps in topics.items())))
            for t in r.topics:
                for x in t.partitions:
                    if x.error_code:
                        raise error_for_code(x.error_code, f"{t.name}-{x.partition}")
                    out[TopicPartition(t.name, x.partition)] = x.offset
        return out

    # kafka-python's names for the group calls above
    def list_consumer_groups(self, states: Iterable[str] | None = None) -> list[GroupListing]:
        return self.list_groups(states)

    def describe_consumer_groups(self, group_ids: Iterable[str]
                                 ) -> dict[str, ConsumerGroupDescription]:
        return self.describe_groups(group_ids)

    def delete_consumer_groups(self, group_ids: Iterable[str]) -> dict[str, RilletError | None]:
        return self.delete_groups(group_ids)
