"""Share-group administration, mixed into :class:`rillet.admin.Admin` (kafka-share-groups).

    admin.list_share_groups()                          # [GroupListing("crawler", "Stable")]
    d = admin.describe_share_group("crawler")          # members + per-partition state
    d.partitions[TopicPartition("urls", 0)].available
    admin.alter_share_group_offsets("crawler", {TopicPartition("urls", 0): EARLIEST})
    admin.delete_share_group("crawler")
    admin.describe_group_configs("crawler")            # GROUP configs: admin.py

ShareGroupDescribe and DeleteGroups go to the group's coordinator; the share-partition state
(DescribeShareGroupOffsets, AlterShareGroupOffsets, DeleteShareGroupOffsets) lives with each
partition's leader and is asked of every leader concerned. See docs/queues.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

from rillet._group_admin import GroupListing, _tps
from rillet.errors import IllegalStateError, RilletError, RilletTimeoutError, error_for_code
from rillet.frozen import frozen
from rillet.records import TopicPartition
from rillet.transport import protocol as p

EARLIEST = -2
LATEST = -1
_NOT_LEADER = {p.ErrorCode.NOT_LEADER_OR_FOLLOWER, p.ErrorCode.LEADER_NOT_AVAILABLE,
               p.ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}


@frozen
class ShareMemberDescription:
    member_id: str
    client_id: str
    host: str
    member_epoch: int
    subscribed_topics: tuple[str, ...]
    assignment: tuple[TopicPartition, ...]


@frozen
class SharePartitionDescription:
    """One share-partition as its leader sees it (``DescribedSharePartition`` on the wire):
    start/end offsets, lag, records per state and a delivery-count histogram
    ``{delivery_count: records}`` of the in-flight records."""

    topic: str
    partition: int
    start_offset: int
    end_offset: int
    high_watermark: int
    lag: int
    available: int
    delayed: int
    acquired: int
    acknowledged: int
    archived: int
    dead_lettered: int
    delivery_counts: dict[int, int] = field(default_factory=dict)


@frozen
class ShareGroupDescription:
    group_id: str
    state: str
    """Empty, Stable or Dead (unknown group)."""
    group_epoch: int
    assignment_epoch: int
    coordinator: str
    members: tuple[ShareMemberDescription, ...]
    partitions: dict[TopicPartition, SharePartitionDescription]


def _wire_tps(tps: Iterable[TopicPartition]) -> tuple[p.GroupTopicPartitions, ...]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(tps):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return tuple(p.GroupTopicPartitions(topic=t, partitions=tuple(ps))
                 for t, ps in by_topic.items())


class ShareAdminMixin:
    """Needs ``self._client``, ``self.config``, ``self._locator`` and ``self._timeout_s``
    (GroupAdminMixin)."""

    def list_share_groups(self) -> list[GroupListing]:
        """Every share group of the cluster with its state."""
        view = self._client.refresh_metadata(())
        found: dict[str, GroupListing] = {}
        for address in list(view.brokers.values()) or list(self._client.bootstrap):
            r = self._client.call(address, p.ListGroupsRequest())
            if r.error_code:
                raise error_for_code(r.error_code, f"ListGroups on {address}")
            for g in r.groups:
                if g.protocol_type == "share":
                    found[g.group_id] = GroupListing(g.group_id, g.group_state)
        return [found[k] for k in sorted(found)]

    def _describe_share_members(self, group_id: str) -> tuple[p.DescribedGroup, str]:
        locator = self._locator(group_id)
        r = locator.call(p.ShareGroupDescribeRequest(group_ids=(group_id,)), self._timeout_s())
        if isinstance(r, p.ErrorResponse):
            raise error_for_code(r.error_code, r.error_message)
        g = r.groups[0]
        if g.error_code and g.error_code != p.ErrorCode.GROUP_ID_NOT_FOUND:
            raise error_for_code(g.error_code, g.error_message or f"share group {group_id!r}")
        return g, locator._address or ""

    def describe_share_group(self, group_id: str, topics: Iterable[str] | None = None
                             ) -> ShareGroupDescription:
        """Members (ShareGroupDescribe) and the share-partition state of each partition of
        ``topics`` (default: the members' subscriptions; with no members, every topic the
        group has state on) from each partition's leader. State "Dead": unknown group."""
        g, coordinator = self._describe_share_members(group_id)
        members = tuple(ShareMemberDescription(
            member_id=m.member_id, client_id=m.client_id, host=m.client_host,
            member_epoch=m.member_epoch, subscribed_topics=tuple(m.subscribed_topic_names),
            assignment=_tps(m.assignment)) for m in sorted(g.members, key=lambda m: m.member_id))
        names = set(topics) if topics is not None else {
            t for m in members for t in m.subscribed_topics}
        probe_all = topics is None and not names
        if probe_all:
            names = set(self.list_topics())
        partitions = self._share_offsets(group_id, names, skip_missing=probe_all)
        return ShareGroupDescription(
            group_id=group_id, state=g.group_state or "Dead", group_epoch=g.group_epoch,
            assignment_epoch=g.assignment_epoch, coordinator=coordinator, members=members,
            partitions=partitions)

    def _share_offsets(self, group_id: str, topics: Iterable[str], *, skip_missing: bool
                       ) -> dict[TopicPartition, SharePartitionDescription]:
        tps = []
        for t in sorted(topics):
            try:
                n = self._client.wait_for_topic(t, self.config.request_timeout_ms)
            except RilletError:
                if skip_missing:
                    continue
                raise
            tps.extend(TopicPartition(t, i) for i in range(n))
        out: dict[TopicPartition, SharePartitionDescription] = {}
        for d in self._per_leader(tps, lambda group: p.DescribeShareGroupOffsetsRequest(
                group_id=group_id, topics=_wire_tps(group)), _described):
            if d.error_code:
                if skip_missing:
                    continue
                raise error_for_code(d.error_code, d.error_message or f"{d.topic}-{d.partition}")
            if skip_missing and d.start_offset < 0:
                continue  # the group has no state on this partition
            out[TopicPartition(d.topic, d.partition)] = SharePartitionDescription(
                topic=d.topic, partition=d.partition, start_offset=d.start_offset,
                end_offset=d.end_offset, high_watermark=d.high_watermark, lag=d.lag,
                available=d.available, delayed=d.delayed, acquired=d.acquired,
                acknowledged=d.acknowledged, archived=d.archived,
                dead_lettered=d.dead_lettered,
                delivery_counts={c.delivery_count: c.records for c in d.delivery_counts})
        return dict(sorted(out.items()))

    def _per_leader(self, tps: list[TopicPartition], make, results) -> list[Any]:
        """Send ``make(tps_of_one_leader)`` to each leader; ``results(response)`` yields
        ``(tp, error_code, item)``. Partitions answered NOT_LEADER (or whose leader is
        unknown or unreachable) are retried after a metadata refresh until the timeout."""
        deadline = time.monotonic() + self._timeout_s()
        todo, out = sorted(set(tps)), []
        last: Any = None
        while todo:
            by_leader: dict[str, list[TopicPartition]] = {}
            retry: list[TopicPartition] = []
            for tp in todo:
                address = self._client.leader_address(tp.topic, tp.partition)
                (retry if address is None else by_leader.setdefault(address, [])).append(tp)
            for address, group in by_leader.items():
                try:
                    r = self._client.call(address, make(group))
                except RilletError as exc:
                    if not exc.retriable:
                        raise
                    last = exc
                    retry.extend(group)
                    continue
                if isinstance(r, p.ErrorResponse) or (
                        getattr(r, "error_code", 0) and not _items(r)):
                    raise error_for_code(r.error_code, r.error_message)
                for tp, code, item in results(r):
                    if code in _NOT_LEADER and time.monotonic() < deadline:
                        last = error_for_code(code, f"{tp.topic}-{tp.partition}")
                        retry.append(tp)
                    else:
                        out.append(item)
            todo = sorted(set(retry))
            if todo:
                if time.monotonic() >= deadline:
                    raise RilletTimeoutError(f"no leader answered for {todo}: {last}")
                time.sleep(0.1)
                self._client.refresh_metadata({tp.topic for tp in todo})
        return out

    def alter_share_group_offsets(self, group_id: str,
                                  offsets: Mapping[TopicPartition, int]) -> None:
        """Reset share-partition start offsets (``EARLIEST`` -2, ``LATEST`` -1 or an offset);
        drops the in-flight state. Refused while the group has members."""
        self._require_empty(group_id, "offsets can be reset")
        wanted = {TopicPartition(*tp): int(o) for tp, o in offsets.items()}

        def make(group):
            by_topic: dict[str, list[p.ShareOffset]] = {}
            for tp in group:
                by_topic.setdefault(tp.topic, []).append(
                    p.ShareOffset(partition=tp.partition, start_offset=wanted[tp]))
            return p.AlterShareGroupOffsetsRequest(group_id=group_id, topics=tuple(
                p.ShareOffsetTopic(name=t, partitions=tuple(ps)) for t, ps in by_topic.items()))

        self._raise_first(self._per_leader(list(wanted), make, _partition_errors))

    def delete_share_group(self, group_id: str) -> None:
        """Delete an empty share group and its share-partition state on every leader."""
        d = self.describe_share_group(group_id)
        if d.state == "Dead" and not d.partitions:
            raise error_for_code(p.ErrorCode.GROUP_ID_NOT_FOUND, f"share group {group_id!r}")
        if d.members:
            raise IllegalStateError(f"share group {group_id!r} has {len(d.members)} active "
                                    f"member(s): stop its consumers first")
        if d.state != "Dead":
            self.delete_groups([group_id])
        tps = list(d.partitions)
        if tps:
            self._raise_first(self._per_leader(
                tps, lambda group: p.DeleteShareGroupOffsetsRequest(
                    group_id=group_id, topics=_wire_tps(group)), _partition_errors))

    def _require_empty(self, group_id: str, what: str) -> None:
        g, _ = self._describe_share_members(group_id)
        if g.members:
            raise IllegalStateError(
                f"share group {group_id!r} has {len(g.members)} active member(s) (state "
                f"{g.group_state}); {what} only when it is inactive")

    @staticmethod
    def _raise_first(items: list[tuple[TopicPartition, int, str | None]]) -> None:
        for tp, code, message in items:
            if code:
                raise error_for_code(code, message or f"{tp.topic}-{tp.partition}")


def _items(r: Any) -> tuple:
    return getattr(r, "partitions", None) or getattr(r, "results", None) or ()


def _described(r: p.DescribeShareGroupOffsetsResponse):
    for d in r.partitions:
        yield TopicPartition(d.topic, d.partition), d.error_code, d


def _partition_errors(r: Any):
    for t in r.results:
        for x in t.partitions:
            tp = TopicPartition(t.name, x.partition)
            yield tp, x.error_code, (tp, x.error_code, getattr(x, "error_message", None))
