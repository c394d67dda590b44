"""FakeBroker plus a naive share group: a test double of the share-group PROTOCOL for the
ShareConsumer's unit tests (heartbeat assigns every subscribed partition to every member;
ShareFetch acquires available records from offset 0 per record, no locks expiring, no
back-off). The real semantics are tested against real brokers in tests/integration."""

from __future__ import annotations

import time

from rillet.logstore import batch as rb
from rillet.transport import protocol as p

from tests.unit.client.fakebroker import FakeBroker

AVAILABLE, ACQUIRED, DONE = "available", "acquired", "done"


class FakeShareBroker(FakeBroker):
    def __init__(self) -> None:
        super().__init__()
        self.members: dict[str, tuple[int, tuple[str, ...]]] = {}
        # (topic, partition) -> {offset: [state, delivery_count, member]}
        self.records: dict[tuple[str, int], dict[int, list]] = {}
        self.ack_log: list[tuple[str, str, int, int, int, int, str]] = []  # api, tp.., type...
        self.fail_ack: dict[tuple[str, int], int] = {}  # error to answer acks of a partition
        self.drop_records = 0  # answer this many fetches with acquired ranges but no bytes
        self.fetch_errors: list[int] = []  # error codes for the next partitions fetched
        self.send_all_batches = False  # answer with every batch of the log, not the covering
        self.ack_delay_s = 0.0  # answer a ShareAcknowledge this late (applied at once)
        self.unnamed: set[tuple[str, int]] = set()  # answers leave these partitions out

    def _state(self, topic: str, partition: int) -> dict[int, list]:
        st = self.records.setdefault((topic, partition), {})
        for base, data in self.logs[topic][partition].batches:
            n = rb.read_header(data).last_offset_delta + 1
            for o in range(base, base + n):
                st.setdefault(o, [AVAILABLE, 0, None])
        return st

    def _handle(self, msg):
        if isinstance(msg, p.FindCoordinatorRequest):
            return p.FindCoordinatorResponse(node_id=self.broker_id, host=self.host,
                                             port=self.port)
        if isinstance(msg, p.ShareGroupHeartbeatRequest):
            return self._heartbeat(msg)
        if isinstance(msg, p.ShareFetchRequest):
            return self._share_fetch(msg, force=msg.max_wait_ms == 0)
        if isinstance(msg, p.ShareAcknowledgeRequest):
            results = []
            for t in msg.topics:
                parts = []
                for sp in t.partitions:
                    code = self._apply_acks("ShareAcknowledge", msg.member_id, t.name, sp)
                    if (t.name, sp.partition) in self.unnamed:
                        continue
                    parts.append(p.PartitionError(partition=sp.partition, error_code=code))
                results.append(p.TopicPartitionErrors(name=t.name, partitions=tuple(parts)))
            if self.ack_delay_s:
                time.sleep(self.ack_delay_s)  # a slow leader (stalls this fake's one worker)
            return p.ShareAcknowledgeResponse(results=tuple(results))
        return super()._handle(msg)

    def _fetch(self, msg, force):
        if isinstance(msg, p.ShareFetchRequest):
            return self._share_fetch(msg, force, acks_done=True)
        return super()._fetch(msg, force)

    def _heartbeat(self, msg: p.ShareGroupHeartbeatRequest):
        if msg.member_epoch == -1:
            self.members.pop(msg.member_id, None)
            return p.ShareGroupHeartbeatResponse(member_id=msg.member_id, member_epoch=-1)
        epoch, topics = self.members.get(msg.member_id, (0, ()))
        if msg.subscribed_topic_names is not None:
            topics = msg.subscribed_topic_names
        epoch += 1
        self.members[msg.member_id] = (epoch, topics)
        assignment = tuple(p.GroupTopicPartitions(topic=t, partitions=tuple(
            range(len(self.logs[t])))) for t in topics if t in self.logs)
        return p.ShareGroupHeartbeatResponse(member_id=msg.member_id, member_epoch=epoch,
                                             heartbeat_interval_ms=200, assignment=assignment)

    def _apply_acks(self, api: str, member: str, topic: str, sp) -> int:
        code = self.fail_ack.get((topic, sp.partition), 0)
        if code:
            return code
        st = self._state(topic, sp.partition)
        for b in sp.acknowledgement_batches:
            n = b.last_offset - b.first_offset + 1
            types = b.acknowledge_types * n if len(b.acknowledge_types) == 1 else (
                b.acknowledge_types)
            for o, kind in zip(range(b.first_offset, b.last_offset + 1), types, strict=True):
                self.ack_log.append((api, topic, sp.partition, o, kind, b.delay_ms, b.reason))
                rec = st.get(o)
                if kind == p.ACK_GAP or rec is None:
                    continue
                if rec[0] != ACQUIRED or rec[2] != member:
                    return p.ErrorCode.INVALID_RECORD_STATE
                if kind in (p.ACK_ACCEPT, p.ACK_REJECT):
                    rec[0] = DONE
                elif kind == p.ACK_RELEASE:
                    rec[0], rec[2] = AVAILABLE, None
        return 0

    def _share_fetch(self, msg: p.ShareFetchRequest, force: bool, acks_done: bool = False):
        topics, got = [], 0
        for t in msg.topics:
            parts = []
            for sp in t.partitions:
                if self.fetch_errors:
                    parts.append(p.ShareFetchPartitionResponse(
                        partition=sp.partition, error_code=self.fetch_errors.pop(0)))
                    got += 1
                    continue
                code = 0 if acks_done else self._apply_acks("ShareFetch", msg.member_id,
                                                            t.name, sp)
                if (t.name, sp.partition) in self.unnamed:
                    continue
                st = self._state(t.name, sp.partition)
                take = [o for o in sorted(st) if st[o][0] == AVAILABLE][:msg.max_records]
                acquired, batches = [], []
                for o in take:
                    st[o][0], st[o][2] = ACQUIRED, msg.member_id
                    st[o][1] += 1
                    if acquired and acquired[-1][1] == o - 1 and acquired[-1][2] == st[o][1]:
                        acquired[-1][1] = o
                    else:
                        acquired.append([o, o, st[o][1]])
                for base, data in self.logs[t.name][sp.partition].batches:
                    last = base + rb.read_header(data).last_offset_delta
                    if self.send_all_batches or any(a <= last and b >= base
                                                    for a, b, _ in acquired):
                        batches.append(data)
                got += len(take)
                if acquired and self.drop_records:
                    self.drop_records -= 1
                    batches = []
                parts.append(p.ShareFetchPartitionResponse(
                    partition=sp.partition, acknowledge_error_code=code,
                    records=b"".join(batches), acquired_records=tuple(
                        p.AcquiredRecords(first_offset=a, last_offset=b, delivery_count=c)
                        for a, b, c in acquired)))
            topics.append(p.ShareFetchTopicResponse(name=t.name, partitions=tuple(parts)))
        if not got and not force:
            return None  # a long poll: the acks are applied, the answer is parked
        return p.ShareFetchResponse(acquisition_lock_timeout_ms=30000, topics=tuple(topics))
