"""actors/txn_wire.py and the transaction configs: FindCoordinator key_type 1 (creating
``__transaction_state`` with its factor and min ISR capped), answers built from the core's
results, the request -> core call mapping, the strict decoding of the topic on load."""

from __future__ import annotations

from types import SimpleNamespace

import cbor2
import pytest
from rillet.actors import controller as C
from rillet.actors import txn_wire as W
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.actors.group_coordinator import OFFSETS_TOPIC, partition_for
from rillet.coordinator import transactions as T
from rillet.coordinator.metadata import BrokerInfo, MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P

E = P.ErrorCode
KEYS = {
    "transaction.state.log.num.partitions": "50",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.state.log.segment.bytes": "104857600",
    "transaction.max.timeout.ms": "900000",
    "transactional.id.expiration.ms": "604800000",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "10000",
    "transaction.remove.expired.transaction.cleanup.interval.ms": "3600000",
}


def test_the_transaction_configs_have_kafkas_defaults_and_are_validated():
    configs = validate_broker_configs({})
    assert {k: configs[k] for k in KEYS} == KEYS
    for key in KEYS:
        for bad in ("0", "-1", "ten"):
            with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
                validate_broker_configs({key: bad})
    assert validate_broker_configs({"transaction.state.log.num.partitions": "3"})[
        "transaction.state.log.num.partitions"] == "3"


class FakeController:
    def __init__(self) -> None:
        self.told: list = []

    def tell(self, message) -> None:
        self.told.append(message)


def image(live: int, txn_partitions: int = 0, leader: int = 1) -> MetadataImage:
    topics = {}
    if txn_partitions:
        topics[W.TXN_TOPIC] = TopicInfo(name=W.TXN_TOPIC, topic_id="x", partitions={
            p: PartitionInfo(partition=p, replicas=(1,), isr=(1,), leader=leader,
                             leader_epoch=0) for p in range(txn_partitions)})
    return MetadataImage(
        brokers={b: BrokerInfo(broker_id=b, host="h", port=9000 + b, fenced=False)
                 for b in range(1, live + 1)},
        topics=topics)


@pytest.mark.parametrize("live, rf, isr", [(1, 1, 1), (2, 2, 2), (5, 3, 2)])
def test_find_coordinator_creates_the_topic_with_capped_factor_and_min_isr(live, rf, isr):
    controller = FakeController()
    ctx = SimpleNamespace(image=image(live), controller=controller, broker_configs={})
    r = W.find_coordinator(ctx, P.FindCoordinatorRequest(key="app", key_type=1))
    assert r.error_code == E.COORDINATOR_NOT_AVAILABLE
    [admin] = controller.told
    assert isinstance(admin, C.Admin)
    [topic] = admin.request.topics
    assert (topic.name, topic.num_partitions, topic.replication_factor) == (
        W.TXN_TOPIC, 50, rf)
    assert topic.configs == {"cleanup.policy": "compact", "segment.bytes": "104857600",
                             "min.insync.replicas": str(isr)}


def test_find_coordinator_names_the_leader_of_the_ids_partition():
    ctx = SimpleNamespace(image=image(2, txn_partitions=3, leader=2), controller=None,
                          broker_configs={})
    r = W.find_coordinator(ctx, P.FindCoordinatorRequest(key="app", key_type=1))
    assert (r.error_code, r.node_id, r.port) == (E.NONE, 2, 9002)
    assert W.find_coordinator(ctx, P.FindCoordinatorRequest(key="", key_type=1)).error_code \
        == E.INVALID_REQUEST
    fenced = SimpleNamespace(image=image(1, txn_partitions=3, leader=2), controller=None,
                             broker_configs={})
    assert W.find_coordinator(fenced, P.FindCoordinatorRequest(key="a", key_type=1)) \
        .error_code == E.COORDINATOR_NOT_AVAILABLE


def add(*tps, verify=False):
    by: dict = {}
    for t, p in tps:
        by.setdefault(t, []).append(p)
    return P.AddPartitionsToTxnRequest(
        transactional_id="app", producer_id=40, producer_epoch=0, verify_only=verify,
        topics=tuple(P.TxnTopic(name=t, partitions=tuple(ps)) for t, ps in by.items()))


def codes(response) -> dict:
    return {(t.name, p.partition): p.error_code for t in response.results for p in t.partitions}


def test_requests_map_to_core_calls_and_answers_to_the_wire():
    img = MetadataImage(topics={"t": TopicInfo(name="t", topic_id="t", partitions={
        0: PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)})})
    ids = iter(range(40, 50))
    core = T.TransactionCoordinator(3)

    def run(req):
        fn = W.operation(req, img, 7, lambda: next(ids), lambda: 1000)
        return W.to_wire(req, fn(core))

    r = run(P.InitProducerIdRequest(transactional_id="app", transaction_timeout_ms=1000))
    assert (r.error_code, r.producer_id, r.producer_epoch) == (E.NONE, 40, 0)
    r = run(add(("t", 0), ("t", 1), ("__consumer_offsets", 0)))
    assert codes(r) == {("t", 0): E.OPERATION_NOT_ATTEMPTED,
                        ("t", 1): E.UNKNOWN_TOPIC_OR_PARTITION,
                        ("__consumer_offsets", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    assert core.describe("app").state is T.TxnState.EMPTY  # nothing joined
    assert run(P.AddOffsetsToTxnRequest(transactional_id="app", producer_id=40,
                                        producer_epoch=0, group_id="g")).error_code == E.NONE
    assert core.describe("app").partitions == {T.TopicPartition(OFFSETS_TOPIC,
                                                                partition_for("g", 7))}
    r = run(add(("t", 0)))
    assert (r.error_code, codes(r)) == (E.NONE, {("t", 0): E.NONE})
    r = run(add(("t", 0), ("u", 0), verify=True))
    assert (r.error_code, codes(r)) == (E.NONE, {("t", 0): E.NONE,
                                                 ("u", 0): E.INVALID_TXN_STATE})
    fenced = P.AddPartitionsToTxnRequest(transactional_id="app", producer_id=40,
                                         producer_epoch=-5, verify_only=True,
                                         topics=(P.TxnTopic(name="t", partitions=(0,)),))
    r = run(fenced)
    assert (r.error_code, codes(r)) == (E.PRODUCER_FENCED, {("t", 0): E.PRODUCER_FENCED})
    r = run(P.EndTxnRequest(transactional_id="app", producer_id=40, producer_epoch=0,
                            committed=True))
    assert (r.error_code, r.producer_id, r.producer_epoch) == (E.NONE, 40, 1)
    assert W.operation(P.ApiVersionsRequest(), img, 7, None, None) is None
    refused = W.error_response(add(("t", 0)), E.NOT_COORDINATOR, "elsewhere")
    assert (refused.error_code, codes(refused)) == (E.NOT_COORDINATOR,
                                                    {("t", 0): E.NOT_COORDINATOR})


def test_decode_state_skips_barriers_and_foreign_records():
    meta = T.TxnMetadata(transactional_id="app", producer_id=1, producer_epoch=0,
                         timeout_ms=1000)
    key, value = T.to_kv(T.TxnRecord("app", meta))
    b = BatchBuilder()
    b.append(1, W.BARRIER_KEY, None)
    b.append(1, cbor2.dumps(key), cbor2.dumps(value))
    b.append(1, cbor2.dumps({"type": "transaction"}), None)  # malformed key
    b.append(1, cbor2.dumps(key), None)  # a tombstone
    records, next_offset, skipped = W.decode_state(b.build(), 0)
    assert records == [T.TxnRecord("app", meta), T.TxnRecord("app", None)]
    assert (next_offset, skipped) == (4, [2])
    assert W.decode_state(b.build(), 2)[0] == [T.TxnRecord("app", None)]


def test_a_shard_loads_to_the_high_watermark_and_never_stops_short():
    from rillet.actors.txn_markers import MarkerSender
    from rillet.actors.txn_shard import LOADED, MORE, RETRY, LoadStep, Shard
    from rillet.logstore.batch import stamp

    meta = T.TxnMetadata(transactional_id="app", producer_id=1, producer_epoch=0,
                         timeout_ms=1000)
    key, value = T.to_kv(T.TxnRecord("app", meta))
    b = BatchBuilder()
    b.append(1, cbor2.dumps(key), cbor2.dumps(value))
    batch = bytearray(b.build())
    stamp(batch, 0, 5, 0)
    shard = Shard(0, 0, 1, MarkerSender(lambda *a: None))

    def read(**fields):
        return shard.on_load_step(LoadStep(0, 1, read=P.FetchPartitionResponse(
            partition=0, **fields)))[0]

    assert shard.on_load_step(LoadStep(0, 1, barrier=P.ProducePartitionResponse(
        partition=0, error_code=E.NOT_ENOUGH_REPLICAS)))[0] == RETRY
    assert not shard.barrier_written
    assert shard.on_load_step(LoadStep(0, 1, barrier=P.ProducePartitionResponse(
        partition=0)))[0] == MORE
    assert read(error_code=E.OFFSET_OUT_OF_RANGE, log_start_offset=5) == MORE
    assert shard.load_offset == 5
    assert read(high_watermark=9, records=b"") == RETRY  # nothing came: not the end
    assert read(high_watermark=9, records=bytes(batch)) == MORE
    assert shard.load_offset == 6 and shard.load_records == [T.TxnRecord("app", meta)]
    assert read(error_code=E.NOT_LEADER_OR_FOLLOWER) == RETRY
    assert read(high_watermark=6, records=b"") == LOADED
