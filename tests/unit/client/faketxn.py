"""FakeBroker plus a minimal transaction coordinator and group offsets, over the real wire.

A protocol double for the client's transactional paths (the real coordinator is tested in
tests/unit/coordinator/transactions and end to end in tests/integration/test_transactions.py):
it checks what a transactional producer owes the broker (a partition is added before its
first transactional batch; the producer id and epoch are current; sequences start at 0 in
each epoch; EndTxn only for a transaction that exists) and answers as the real broker does
(markers in the log, the last stable offset and aborted transactions in read_committed
fetches, offsets visible on commit, UNSTABLE_OFFSET_COMMIT while pending).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rillet.logstore import batch as rb
from rillet.logstore.txn_markers import ControlType, EndTxnMarker, build_marker_batch
from rillet.transport import protocol as p

from tests.unit.client.fakebroker import FakeBroker

E = p.ErrorCode


@dataclass
class _Txn:
    producer_id: int
    producer_epoch: int = 0
    partitions: set = field(default_factory=set)
    groups: set = field(default_factory=set)
    pending_offsets: dict = field(default_factory=dict)  # group -> {(topic, p): offset}


@dataclass
class Produced:
    """One transactional batch as the fake received it."""

    topic: str
    partition: int
    offset: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    transactional: bool


class FakeTxnBroker(FakeBroker):
    def __init__(self) -> None:
        super().__init__()
        self.txns: dict[str, _Txn] = {}
        self._next_pid = 1000
        self.open: dict[tuple[str, int], dict[int, int]] = {}  # tp -> {pid: first offset}
        self.aborted: dict[tuple[str, int], list[tuple[int, int, int]]] = {}  # (pid, first, last)
        self.sequences: dict[tuple[int, int, str, int], int] = {}  # (pid, epoch, tp) -> next
        self.produced: list[Produced] = []
        self.committed: dict[str, dict[tuple[str, int], int]] = {}
        self.generations: dict[str, int] = {}  # group -> the current member epoch
        self.init_requests: list[p.InitProducerIdRequest] = []
        self.end_requests: list[p.EndTxnRequest] = []
        self.offset_commits: list[p.TxnOffsetCommitRequest] = []
        self.find_requests: list[p.FindCoordinatorRequest] = []

    # -- what tests call -------------------------------------------------------------------

    def expire(self, transactional_id: str) -> None:
        """The coordinator's transaction timeout: abort and bump the epoch (fences)."""
        with self._lock:
            txn = self.txns[transactional_id]
            self._end(txn, committed=False)
            txn.producer_epoch += 1

    # -- dispatch --------------------------------------------------------------------------

    def _handle(self, msg):
        codes = self.fail_next.get(msg.API)
        if codes and not isinstance(msg, p.ProduceRequest):
            code = codes.pop(0)
            if isinstance(msg, p.AddPartitionsToTxnRequest):
                return p.AddPartitionsToTxnResponse(error_code=code, results=tuple(
                    p.TopicPartitionErrors(name=t.name, partitions=tuple(
                        p.PartitionError(partition=i, error_code=code) for i in t.partitions))
                    for t in msg.topics))
            return _RESPONSES[type(msg)](error_code=code)
        if isinstance(msg, p.FindCoordinatorRequest):
            self.find_requests.append(msg)
            return p.FindCoordinatorResponse(node_id=self.broker_id, host=self.host,
                                             port=self.port)
        if isinstance(msg, p.InitProducerIdRequest) and msg.transactional_id is not None:
            return self._init(msg)
        handler = {
            p.AddPartitionsToTxnRequest: self._add_partitions,
            p.AddOffsetsToTxnRequest: self._add_offsets,
            p.TxnOffsetCommitRequest: self._txn_offset_commit,
            p.EndTxnRequest: self._end_txn,
            p.OffsetFetchRequest: self._offset_fetch,
        }.get(type(msg))
        if handler is not None:
            return handler(msg)
        if isinstance(msg, p.ProduceRequest) and not codes:
            refused = self._check_produce(msg)
            if refused is not None:
                return refused
        return super()._handle(msg)

    # -- the coordinator -------------------------------------------------------------------

    def _init(self, msg: p.InitProducerIdRequest):
        self.init_requests.append(msg)
        txn = self.txns.get(msg.transactional_id)
        if txn is None:
            txn = self.txns[msg.transactional_id] = _Txn(self._next_pid)
            self._next_pid += 1
        else:
            if txn.partitions or txn.groups:  # an older instance's transaction: aborted
                self._end(txn, committed=False)
            txn.producer_epoch += 1
        return p.InitProducerIdResponse(producer_id=txn.producer_id,
                                        producer_epoch=txn.producer_epoch)

    def _check(self, tid: str, pid: int, epoch: int) -> tuple[_Txn | None, int]:
        txn = self.txns.get(tid)
        if txn is None:
            return None, E.TRANSACTIONAL_ID_NOT_FOUND
        if pid != txn.producer_id:
            return None, E.INVALID_PRODUCER_ID_MAPPING
        if epoch < txn.producer_epoch:
            return None, E.PRODUCER_FENCED
        if epoch > txn.producer_epoch:
            return None, E.INVALID_PRODUCER_EPOCH
        return txn, 0

    def _add_partitions(self, msg: p.AddPartitionsToTxnRequest):
        txn, code = self._check(msg.transactional_id, msg.producer_id, msg.producer_epoch)
        for t in msg.topics:
            for i in t.partitions:
                if txn is not None:
                    txn.partitions.add((t.name, i))
        return p.AddPartitionsToTxnResponse(error_code=code, results=tuple(
            p.TopicPartitionErrors(name=t.name, partitions=tuple(
                p.PartitionError(partition=i, error_code=code) for i in t.partitions))
            for t in msg.topics))

    def _add_offsets(self, msg: p.AddOffsetsToTxnRequest):
        txn, code = self._check(msg.transactional_id, msg.producer_id, msg.producer_epoch)
        if txn is not None:
            txn.groups.add(msg.group_id)
        return p.AddOffsetsToTxnResponse(error_code=code)

    def _txn_offset_commit(self, msg: p.TxnOffsetCommitRequest):
        self.offset_commits.append(msg)
        txn, code = self._check(msg.transactional_id, msg.producer_id, msg.producer_epoch)
        if txn is not None and msg.group_id not in txn.groups:
            code = E.INVALID_TXN_STATE
        current = self.generations.get(msg.group_id)
        if not code and msg.generation_id >= 0 and current is not None and (
                msg.generation_id != current):
            code = E.ILLEGAL_GENERATION
        if not code:
            pending = txn.pending_offsets.setdefault(msg.group_id, {})
            for t in msg.topics:
                for pp in t.partitions:
                    pending[(t.name, pp.partition)] = pp.committed_offset
        return p.TxnOffsetCommitResponse(error_code=code)

    def _end_txn(self, msg: p.EndTxnRequest):
        self.end_requests.append(msg)
        txn, code = self._check(msg.transactional_id, msg.producer_id, msg.producer_epoch)
        if code:
            return p.EndTxnResponse(error_code=code)
        if msg.committed and not (txn.partitions or txn.groups):
            return p.EndTxnResponse(error_code=E.INVALID_TXN_STATE)
        txn.producer_epoch += 1  # KIP-890 part 2: every end bumps the epoch
        self._end(txn, msg.committed)
        return p.EndTxnResponse(producer_id=txn.producer_id, producer_epoch=txn.producer_epoch)

    def _end(self, txn: _Txn, committed: bool) -> None:
        kind = ControlType.COMMIT if committed else ControlType.ABORT
        for tp in sorted(txn.partitions):
            log = self.logs[tp[0]][tp[1]]
            data = bytearray(build_marker_batch(
                EndTxnMarker(txn.producer_id, txn.producer_epoch, kind, 0), 1000))
            rb.stamp(data, 0, log.log_end_offset, 0)
            log.batches.append((log.log_end_offset, bytes(data)))
            first = self.open.get(tp, {}).pop(txn.producer_id, None)
            if first is not None and not committed:
                self.aborted.setdefault(tp, []).append(
                    (txn.producer_id, first, log.log_end_offset))
            log.log_end_offset += 1
        if committed:
            for group, offsets in txn.pending_offsets.items():
                self.committed.setdefault(group, {}).update(offsets)
        txn.partitions, txn.groups, txn.pending_offsets = set(), set(), {}

    def _offset_fetch(self, msg: p.OffsetFetchRequest):
        pending = {tp for txn in self.txns.values()
                   for tp in txn.pending_offsets.get(msg.group_id, {})}
        committed = self.committed.get(msg.group_id, {})
        topics = []
        for t in msg.topics or ():
            parts = []
            for i in t.partitions:
                tp = (t.topic, i)
                if msg.require_stable and tp in pending:
                    parts.append(p.OffsetFetchPartition(partition=i,
                                                        error_code=E.UNSTABLE_OFFSET_COMMIT))
                else:
                    parts.append(p.OffsetFetchPartition(partition=i,
                                                        committed_offset=committed.get(tp, -1)))
            topics.append(p.OffsetFetchTopic(name=t.topic, partitions=tuple(parts)))
        return p.OffsetFetchResponse(topics=tuple(topics))

    # -- the partition side ----------------------------------------------------------------

    def _check_produce(self, msg: p.ProduceRequest):
        """Refuse a request breaking a transactional producer's obligations; else record it."""
        checked = []
        for t in msg.topics:
            for pp in t.partitions:
                for header, _ in rb.iter_batches(bytes(pp.records)):
                    if not header.is_transactional:
                        continue
                    tp = (t.name, pp.partition)
                    txn, code = self._check(msg.transactional_id or "", header.producer_id,
                                            header.producer_epoch)
                    if code == E.PRODUCER_FENCED:
                        code = E.INVALID_PRODUCER_EPOCH  # what a partition leader answers
                    if not code and tp not in txn.partitions:
                        code = E.INVALID_TXN_STATE  # not added first
                    key = (header.producer_id, header.producer_epoch, *tp)
                    if not code and header.base_sequence != self.sequences.get(key, 0):
                        code = E.OUT_OF_ORDER_SEQUENCE_NUMBER
                    if code:
                        return p.ProduceResponse(topics=tuple(p.ProduceTopicResponse(
                            name=tt.name, partitions=tuple(p.ProducePartitionResponse(
                                partition=x.partition, error_code=code)
                                for x in tt.partitions)) for tt in msg.topics))
                    checked.append((tp, header, key))
        for tp, header, key in checked:
            self.sequences[key] = header.base_sequence + header.record_count
            log = self.logs[tp[0]][tp[1]]
            self.open.setdefault(tp, {}).setdefault(header.producer_id, log.log_end_offset)
            self.produced.append(Produced(tp[0], tp[1], log.log_end_offset, header.producer_id,
                                          header.producer_epoch, header.base_sequence, True))
        return None

    def _fetch(self, msg: p.FetchRequest, force: bool):
        if msg.isolation_level != p.READ_COMMITTED:
            return super()._fetch(msg, force)
        topics = []
        total = 0
        for t in msg.topics:
            parts = []
            for fp in t.partitions:
                tp = (t.name, fp.partition)
                log = self.logs[t.name][fp.partition]
                lso = min(self.open.get(tp, {}).values(), default=log.log_end_offset)
                out = [data for base, data in log.batches
                       if base + rb.read_header(data).last_offset_delta >= fp.fetch_offset
                       and base < lso]
                aborted = tuple(p.AbortedTransaction(producer_id=pid, first_offset=first)
                                for pid, first, last in self.aborted.get(tp, ())
                                if last >= fp.fetch_offset and first < lso)
                total += sum(map(len, out))
                parts.append(p.FetchPartitionResponse(
                    partition=fp.partition, high_watermark=log.log_end_offset,
                    last_stable_offset=lso, log_start_offset=log.log_start_offset,
                    records=b"".join(out), aborted_transactions=aborted))
            topics.append(p.FetchTopicResponse(name=t.name, partitions=tuple(parts)))
        if total < msg.min_bytes and not force:
            return None
        return p.FetchResponse(topics=tuple(topics))


_RESPONSES = {
    p.InitProducerIdRequest: p.InitProducerIdResponse,
    p.AddOffsetsToTxnRequest: p.AddOffsetsToTxnResponse,
    p.TxnOffsetCommitRequest: p.TxnOffsetCommitResponse,
    p.EndTxnRequest: p.EndTxnResponse,
    p.FindCoordinatorRequest: p.FindCoordinatorResponse,
    p.OffsetFetchRequest: p.OffsetFetchResponse,
}
