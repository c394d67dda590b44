"""The transaction coordinator actor (actors/txn_coordinator.py) on real brokers, raw wire:
FindCoordinator key_type 1 creates ``__transaction_state``; InitProducerId fences older
instances; AddPartitionsToTxn (and its verify_only form); EndTxn answers with the bumped
epoch and answers a retry again; the state survives a restart and moves with the leadership
of its partition; a transaction past its timeout is aborted.
"""

from __future__ import annotations

import time

import pytest
from rillet.actors.group_coordinator import partition_for
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from tests.support import FAST_CLUSTER_CONFIGS, wait_until

E = P.ErrorCode
TXN_TOPIC = "__transaction_state"
CONFIGS = {"transaction.state.log.num.partitions": "3"}
RETRIABLE = (E.COORDINATOR_NOT_AVAILABLE, E.COORDINATOR_LOAD_IN_PROGRESS, E.NOT_COORDINATOR,
             E.CONCURRENT_TRANSACTIONS)


class Txn:
    """A raw transactional client: finds the coordinator of ``tid`` through any live broker
    of ``cluster`` and retries what Kafka's clients retry (coordinator moves and loads)."""

    def __init__(self, cluster, tid: str) -> None:
        self.cluster = cluster
        self.tid = tid
        self.endpoint = ClientEndpoint()
        self.coordinator: int | None = None

    def call(self, broker_id: int, request, timeout_ms: int = 5000):
        try:
            return self.endpoint.request(self.cluster.address(broker_id), request,
                                         timeout_ms).result(timeout_ms / 1000 + 2)
        except Exception:  # noqa: BLE001 - a broker down or busy: the caller polls again
            return None

    def find(self, timeout_s: float = 20) -> int:
        def found():
            for b in self.cluster.broker_ids:
                if self.cluster.pid(b) is None:
                    continue
                r = self.call(b, P.FindCoordinatorRequest(key=self.tid, key_type=1))
                if r is not None and r.error_code == E.NONE:
                    return r.node_id
            return None

        self.coordinator = wait_until(found, timeout_s, f"the coordinator of {self.tid}", 0.1)
        return self.coordinator

    def request(self, request, timeout_s: float = 20, retry=RETRIABLE):
        """Send to the coordinator until the answer is not a retriable error."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.coordinator is None:
                self.find(max(1.0, deadline - time.monotonic()))
            r = self.call(self.coordinator, request)
            code = None if r is None else r.error_code
            if code not in retry and r is not None:
                return r
            assert time.monotonic() < deadline, f"{request.API}: still {r!r}"
            if code in (None, E.NOT_COORDINATOR, E.COORDINATOR_NOT_AVAILABLE):
                self.coordinator = None
            time.sleep(0.05)

    def init(self, timeout_ms: int = 60_000, pid: int = -1, epoch: int = -1):
        r = self.request(P.InitProducerIdRequest(
            transactional_id=self.tid, transaction_timeout_ms=timeout_ms, producer_id=pid,
            producer_epoch=epoch))
        assert r.error_code == E.NONE, r
        return r.producer_id, r.producer_epoch

    def add(self, pid: int, epoch: int, topic: str, *partitions: int, verify: bool = False):
        r = self.request(P.AddPartitionsToTxnRequest(
            transactional_id=self.tid, producer_id=pid, producer_epoch=epoch,
            topics=(P.TxnTopic(name=topic, partitions=partitions),), verify_only=verify))
        codes = {p.partition: p.error_code for t in r.results for p in t.partitions}
        return r.error_code, codes

    def end(self, pid: int, epoch: int, commit: bool, retry=RETRIABLE, timeout_s: float = 20):
        return self.request(P.EndTxnRequest(transactional_id=self.tid, producer_id=pid,
                                            producer_epoch=epoch, committed=commit),
                            timeout_s=timeout_s, retry=retry)

    def close(self) -> None:
        self.endpoint.close()


def create_topic(txn: Txn, name: str, partitions: int, rf: int = 1) -> None:
    r = txn.call(1, P.CreateTopicsRequest(topics=(P.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=rf),)), 10_000)
    assert r is not None and r.topics[0].error_code == E.NONE, r


@pytest.fixture
def txn_factory():
    made: list[Txn] = []

    def make(cluster, tid: str) -> Txn:
        made.append(Txn(cluster, tid))
        return made[-1]

    yield make
    for t in made:
        t.close()


def test_find_coordinator_creates_the_transaction_state_topic(cluster_factory, txn_factory):
    cluster = cluster_factory(configs=CONFIGS)
    txn = txn_factory(cluster, "app-1")
    first = txn.call(1, P.FindCoordinatorRequest(key="app-1", key_type=1))
    assert first.error_code == E.COORDINATOR_NOT_AVAILABLE, first  # created on this first ask
    assert txn.find() == 1
    r = txn.call(1, P.FindCoordinatorRequest(key="app-1", key_type=1))
    assert (r.node_id, r.host, r.port) == (1, *cluster.address(1).rsplit(":", 1)[:1],
                                           int(cluster.address(1).rsplit(":", 1)[1]))
    meta = txn.call(1, P.MetadataRequest(topics=(TXN_TOPIC,))).topics[0]
    assert meta.is_internal and len(meta.partitions) == 3
    configs = txn.call(1, P.DescribeConfigsRequest(resources=(P.ConfigResource(
        resource_type=P.ConfigResourceType.TOPIC, resource_name=TXN_TOPIC),))).results[0]
    values = {c.name: c.value for c in configs.configs}
    assert values["cleanup.policy"] == "compact"
    assert values["min.insync.replicas"] == "1"  # 2, capped at the replication factor 1
    assert values["segment.bytes"] == str(100 << 20)
    empty = txn.call(1, P.FindCoordinatorRequest(key="", key_type=1))
    assert empty.error_code == E.INVALID_REQUEST
    # nothing but the coordinator writes the topic
    produce = txn.call(1, P.ProduceRequest(acks=1, topics=(P.ProduceTopic(
        name=TXN_TOPIC, partitions=(P.ProducePartition(partition=0, records=b"x"),)),)))
    assert produce.topics[0].partitions[0].error_code == E.INVALID_TOPIC_EXCEPTION


def test_a_second_instance_fences_the_first_and_verify_only_answers_per_partition(
        cluster_factory, txn_factory):
    cluster = cluster_factory(configs=CONFIGS)
    txn = txn_factory(cluster, "app-1")
    create_topic(txn, "t", 2)
    pid, epoch = txn.init()
    assert pid >= 0 and epoch == 0
    pid2, epoch2 = txn.init()  # a second instance of the same transactional id
    assert (pid2, epoch2) == (pid, 1)
    assert txn.add(pid, 0, "t", 0) == (E.PRODUCER_FENCED, {0: E.PRODUCER_FENCED})
    assert txn.add(pid, 1, "t", 0) == (E.NONE, {0: E.NONE})
    assert txn.add(pid, 1, "t", 0, 1, verify=True) == (E.NONE, {0: E.NONE,
                                                                1: E.INVALID_TXN_STATE})
    assert txn.add(pid, 0, "t", 0, verify=True)[0] == E.PRODUCER_FENCED
    # an unknown topic joins nothing, and the rest of the request is not attempted
    assert txn.add(pid, 1, "nope", 0)[1] == {0: E.UNKNOWN_TOPIC_OR_PARTITION}
    assert txn.add(pid, 1, "t", 1, verify=True)[1] == {1: E.INVALID_TXN_STATE}
    offsets = txn.request(P.AddOffsetsToTxnRequest(transactional_id="app-1", producer_id=pid,
                                                   producer_epoch=1, group_id="g"))
    assert offsets.error_code == E.NONE
    # bad input: clear errors, the broker carries on
    bad = txn.request(P.InitProducerIdRequest(transactional_id="app-1",
                                              transaction_timeout_ms=0))
    assert bad.error_code == E.INVALID_TRANSACTION_TIMEOUT
    empty = txn.call(1, P.EndTxnRequest(transactional_id="", producer_id=pid, producer_epoch=1,
                                        committed=True))
    assert empty.error_code == E.INVALID_REQUEST
    nothing = txn.request(P.AddPartitionsToTxnRequest(
        transactional_id="app-1", producer_id=pid, producer_epoch=1, topics=()))
    assert nothing.error_code == E.INVALID_REQUEST
    assert txn.add(pid, 1, "t", -1)[1] == {-1: E.UNKNOWN_TOPIC_OR_PARTITION}
    assert txn.add(pid, 1, "t", 0, 1, verify=True)[1] == {0: E.NONE, 1: E.INVALID_TXN_STATE}
    other = txn_factory(cluster, "never-seen")
    assert other.add(pid, 1, "t", 0)[0] == E.TRANSACTIONAL_ID_NOT_FOUND
    # an idempotent producer's InitProducerId is still the controller's
    plain = txn.call(1, P.InitProducerIdRequest())
    assert plain.error_code == E.NONE and plain.producer_id not in (-1, pid)


def test_end_txn_answers_the_bumped_epoch_and_a_retry_again(cluster_factory, txn_factory):
    cluster = cluster_factory(configs=CONFIGS)
    txn = txn_factory(cluster, "app-1")
    create_topic(txn, "gone", 1)
    pid, epoch = txn.init()
    assert txn.add(pid, epoch, "gone", 0) == (E.NONE, {0: E.NONE})
    # the topic is deleted before the commit: its marker has nowhere to go (done at once)
    r = txn.call(1, P.DeleteTopicsRequest(topic_names=("gone",)), 10_000)
    assert r.results[0].error_code == E.NONE
    wait_until(lambda: txn.call(1, P.MetadataRequest(topics=("gone",))).topics[0].error_code
               == E.UNKNOWN_TOPIC_OR_PARTITION, 10, "the topic deleted")
    first = txn.end(pid, epoch, commit=True, retry=())
    assert (first.error_code, first.producer_id, first.producer_epoch) == (E.NONE, pid, epoch + 1)
    retry = txn.end(pid, epoch, commit=True)  # CONCURRENT until CompleteCommit is written
    assert (retry.error_code, retry.producer_id, retry.producer_epoch) == (
        E.NONE, pid, epoch + 1)
    wrong_way = txn.end(pid, epoch, commit=False)
    assert wrong_way.error_code == E.INVALID_TXN_STATE
    assert txn.end(pid, epoch + 1, commit=True).error_code == E.INVALID_TXN_STATE  # ended
    # after a new InitProducerId (Empty) an abort of no transaction bumps too (KIP-890 part 2)
    assert txn.init() == (pid, epoch + 2)
    aborted = txn.end(pid, epoch + 2, commit=False, retry=())
    assert (aborted.error_code, aborted.producer_epoch) == (E.NONE, epoch + 3)
    again = txn.end(pid, epoch + 2, commit=False, retry=())
    assert (again.error_code, again.producer_epoch) == (E.NONE, epoch + 3)


def _offers(txn: Txn, api: str) -> bool:
    r = txn.call(1, P.ApiVersionsRequest())
    return any(v.api == api for v in r.api_versions)


def test_markers_are_written_and_transactions_complete(cluster_factory, txn_factory):
    """Commit, the abort of a fenced instance's transaction, the abort of a timed-out one:
    each completes only when every marker is written (the partition side answers)."""
    cluster = cluster_factory(configs={
        **CONFIGS, "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    txn = txn_factory(cluster, "app-1")
    create_topic(txn, "t", 2)
    pid, epoch = txn.init()
    assert txn.add(pid, epoch, "t", 0, 1)[0] == E.NONE
    first = txn.end(pid, epoch, commit=True, retry=())
    assert first.error_code == E.NONE and first.producer_epoch == epoch + 1
    retry = txn.end(pid, epoch, commit=True)  # answered again once the markers are written
    assert (retry.error_code, retry.producer_epoch) == (E.NONE, epoch + 1)
    # a new instance while a transaction is open: it is aborted (markers), then the bump
    assert txn.add(pid, epoch + 1, "t", 0)[0] == E.NONE
    assert txn.init() == (pid, epoch + 3)
    # a transaction past its timeout: the coordinator aborts it and writes the markers
    other = txn_factory(cluster, "app-2")
    pid2, epoch2 = other.init(timeout_ms=1000)
    assert other.add(pid2, epoch2, "t", 1)[0] == E.NONE
    wait_until(lambda: other.add(pid2, epoch2, "t", 1, verify=True)[0] == E.PRODUCER_FENCED,
               10, "the timed-out transaction aborted")
    assert other.init() == (pid2, epoch2 + 2)  # CONCURRENT until CompleteAbort is written


def test_the_state_survives_a_restart_of_the_coordinator(cluster_factory, txn_factory):
    cluster = cluster_factory(configs=CONFIGS)
    txn = txn_factory(cluster, "app-1")
    create_topic(txn, "t", 2)
    pid, _ = txn.init()
    pid, epoch = txn.init()
    assert txn.add(pid, epoch, "t", 1)[0] == E.NONE
    cluster.stop()
    cluster.start(timeout_s=30)
    txn.coordinator = None
    assert txn.add(pid, epoch, "t", 0, 1, verify=True) == (E.NONE, {0: E.INVALID_TXN_STATE,
                                                                    1: E.NONE})
    assert txn.add(pid, epoch - 1, "t", 1)[0] == E.PRODUCER_FENCED


def test_a_transaction_past_its_timeout_is_aborted(cluster_factory, txn_factory):
    cluster = cluster_factory(configs={
        **CONFIGS, "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    txn = txn_factory(cluster, "app-1")
    create_topic(txn, "t", 1)
    pid, epoch = txn.init(timeout_ms=1000)
    assert txn.add(pid, epoch, "t", 0)[0] == E.NONE
    started = time.monotonic()
    wait_until(lambda: txn.add(pid, epoch, "t", 0, verify=True)[0] == E.PRODUCER_FENCED, 10,
               "the transaction aborted with a bumped epoch")
    assert time.monotonic() - started >= 0.5  # not before its timeout (1 s, less RTTs)
    assert txn.add(pid, epoch, "t", 0)[0] == E.PRODUCER_FENCED
    assert txn.end(pid, epoch, commit=True, retry=(E.NOT_COORDINATOR,)).error_code == (
        E.PRODUCER_FENCED)


@pytest.mark.slow  # ~6 s; the default suite has test_transactions.py's commit across the
# death of the coordinator's broker, which covers the same move through the client
@pytest.mark.timeout(120)
def test_the_coordinator_moves_when_its_broker_is_killed(cluster_factory, txn_factory):
    cluster = cluster_factory(3, {**FAST_CLUSTER_CONFIGS, **CONFIGS,
                                  "replica.lag.time.max.ms": "1500"})
    txn = txn_factory(cluster, "app-1")
    create_topic(txn, "t", 2, rf=3)
    pid, _ = txn.init()
    pid, epoch = txn.init()
    assert txn.add(pid, epoch, "t", 0)[0] == E.NONE
    victim = txn.find()
    meta = txn.call(victim, P.MetadataRequest(topics=(TXN_TOPIC,))).topics[0]
    leader = {p.partition: p.leader for p in meta.partitions}[partition_for("app-1", 3)]
    assert leader == victim and len(meta.partitions[0].replicas) == 3
    cluster.kill(victim)
    txn.coordinator = None
    successor = wait_until(lambda: (c := txn.find(30)) != victim and c, 30, "a new coordinator")
    assert successor != victim
    assert txn.add(pid, epoch, "t", 0, 1, verify=True) == (E.NONE, {0: E.NONE,
                                                                      1: E.INVALID_TXN_STATE})
    assert txn.add(pid, epoch - 1, "t", 0)[0] == E.PRODUCER_FENCED


@pytest.mark.slow  # ~30 s: two kills and a restart in a 4-broker cluster
@pytest.mark.timeout(180)
def test_a_prepared_commit_is_finished_by_the_next_coordinator(cluster_factory, txn_factory):
    """EndTxn(commit) is durable (PrepareCommit) while its partition has no leader; the
    coordinator's broker is killed; the next coordinator loads the PrepareCommit, sends the
    markers again, and completes once the partition is back."""
    from tests.support import FAST_REPLICATION_CONFIGS

    cluster = cluster_factory(4, {**FAST_REPLICATION_CONFIGS,
                                  "transaction.state.log.num.partitions": "8"})
    probe = txn_factory(cluster, "probe")
    assert _offers(probe, "WriteTxnMarkers")
    create_topic(probe, "t", 8, rf=1)
    probe.find()
    # broker 4 is no controller voter: killing it and a voter keeps the quorum

    def settled() -> dict | None:  # every partition of both topics listed with a leader
        resp = probe.call(1, P.MetadataRequest(topics=("t", TXN_TOPIC)))
        if resp is None:
            return None
        m = {t.name: {p.partition: p for p in t.partitions} for t in resp.topics}
        ok = all(len(m.get(name, {})) == 8 and all(i.leader >= 0 for i in m[name].values())
                 for name in ("t", TXN_TOPIC))
        return m if ok else None

    meta = wait_until(settled, 30, "both topics' partitions with leaders")
    partition = next(p for p, info in meta["t"].items() if info.leader == 4)
    tid = next(f"app-{i}" for i in range(1000)
               if 4 not in (info := meta[TXN_TOPIC][partition_for(f"app-{i}", 8)]).replicas
               and info.leader in (1, 2, 3))
    txn = txn_factory(cluster, tid)
    pid, epoch = txn.init()
    assert txn.add(pid, epoch, "t", partition)[0] == E.NONE
    cluster.kill(4)
    wait_until(lambda: (m := txn.call(1, P.MetadataRequest(topics=("t",)))) is not None
               and {p.partition: p.leader for p in m.topics[0].partitions}[partition] != 4,
               30, "the partition without its leader")
    ended = txn.end(pid, epoch, commit=True, retry=())
    assert (ended.error_code, ended.producer_epoch) == (E.NONE, epoch + 1)
    victim = txn.find()
    cluster.kill(victim)
    txn.coordinator = None
    wait_until(lambda: txn.find(30) != victim, 30, "a new coordinator")
    loaded = txn.end(pid, epoch, commit=True, retry=RETRIABLE[:-1])
    assert loaded.error_code == E.CONCURRENT_TRANSACTIONS  # PrepareCommit: markers pending
    cluster.start_broker(4)
    done = txn.end(pid, epoch, commit=True, timeout_s=60)
    assert (done.error_code, done.producer_epoch) == (E.NONE, epoch + 1)
