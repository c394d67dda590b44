"""Failover on real processes: 3 brokers, RF=3, min.insync.replicas=2, acks=all, idempotence
on. The leader of a busy partition is killed (kill -9) and restarted while a producer writes
to 3 partitions; the history (tests/history.py) must show 0 lost, 0 duplicates, order kept.
A produce whose response is lost is re-sent to the new leader: it gets its original offsets
and nothing is written twice (the producer state is replicated)."""

from __future__ import annotations

import threading
import time

import pytest
from rillet.transport import protocol as P
from test_replication_basics import FAST, batch, call, partition_meta, read_all, wait_until

from rillet import Admin, NewTopic, Producer
from rillet.accumulator import with_producer
from tests.history import History, check

pytestmark = [pytest.mark.integration]
TOPIC = "busy"


def _admin(c) -> Admin:
    return Admin({"bootstrap.servers": c.bootstrap_servers, "request.timeout.ms": 15000})


def _leader(c, partition: int, exclude: int | None = None) -> int:
    def found():
        m = partition_meta(c, TOPIC, partition, [b for b in c.broker_ids if b != exclude])
        if m is None or m.leader < 0 or m.leader == exclude or c.pid(m.leader) is None:
            return None
        return m.leader

    return wait_until(found, 20, f"a leader for partition {partition}")


def _run_kills(c, kills: int) -> None:
    with _admin(c) as a:
        a.create_topics([NewTopic(TOPIC, 3, 3, configs={"min.insync.replicas": "2"})])
    history = History()
    lock = threading.Lock()
    stop = threading.Event()
    producer = Producer(
        {
            "bootstrap.servers": c.bootstrap_servers,
            "acks": "all",
            "linger.ms": 5,
            "request.timeout.ms": 4000,
            "delivery.timeout.ms": 120_000,
        }
    )
    assert producer._sender.idempotent

    def produce() -> None:
        i = 0
        while not stop.is_set():
            for partition in range(3):
                value = f"p{partition}-{i:06d}".encode()
                with lock:
                    history.send("producer", value, partition)
                future = producer.send(TOPIC, value, partition=partition)

                def done(f, value=value, partition=partition) -> None:
                    with lock:
                        try:
                            history.ack(value, partition, f.get(0).offset)
                        except Exception:  # noqa: BLE001 - indeterminate: may have landed
                            history.info(value)

                future.add_done_callback(done)
            i += 1
            time.sleep(0.005)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        for _ in range(kills):
            victim = _leader(c, 0)
            c.kill(victim)
            _leader(c, 0, exclude=victim)  # a new leader from the ISR
            time.sleep(0.5)  # keep producing through the new leader
            c.start_broker(victim)
            c.wait_ready(30, broker_ids=[victim])

            def back_in_sync(victim=victim):
                m = partition_meta(c, TOPIC, 0)
                return m is not None and victim in m.isr

            wait_until(back_in_sync, 30, f"broker {victim} back in the ISR")
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(10)
        try:
            producer.flush(150)
        except Exception:
            snd = producer._sender
            print("SENDER", dict(snd.in_flight), dict(snd.batches_in_flight), snd.next_sequence)
            for b in list(snd.waiting)[:10]:
                print("WAIT", b.topic, b.partition, b.base_sequence, b.attempts, b.retry_at_ms)
            for b in list(snd.incomplete)[:20]:
                print("INC", b.topic, b.partition, b.base_sequence, b.attempts, b.retry_at_ms)
            raise
        finally:
            producer.close()
    for partition in range(3):
        leader = _leader(c, partition)
        for offset, value in enumerate_log(c, leader, partition):
            history.read("drain", partition, offset, value)
        history.drain(partition)
    report = check(history)
    assert report.ok, report.summary()
    acked = sum(1 for s in history.sends.values() if s.outcome == "ok")
    assert acked > 100, f"the producer made too little progress: {report.summary()}"


def enumerate_log(c, broker_id: int, partition: int):
    return list(enumerate(read_all(c, broker_id, TOPIC, partition)))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_killing_the_leader_twice_loses_and_duplicates_nothing(cluster_factory):
    _run_kills(cluster_factory(3, FAST), kills=2)


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_killing_the_leader_five_times_loses_and_duplicates_nothing(cluster_factory):
    _run_kills(cluster_factory(3, FAST), kills=5)


@pytest.mark.timeout(120)
def test_a_produce_whose_response_was_lost_is_not_written_twice_after_failover(cluster_factory):
    c = cluster_factory(3, FAST)
    with _admin(c) as a:
        a.create_topics([NewTopic(TOPIC, 1, 3, configs={"min.insync.replicas": "2"})])
    init = wait_until(
        lambda: (
            (r := call(c, 1, P.InitProducerIdRequest(), 5000))
            and isinstance(r, P.InitProducerIdResponse)
            and r
        ),
        10,
        "a producer id",
    )
    assert init.producer_id >= 0
    leader = _leader(c, 0)
    batches, sequence = [], 0
    for i in range(5):
        values = [f"b{i}-{j}".encode() for j in range(3)]
        data = with_producer(batch(values), init.producer_id, init.producer_epoch, sequence)
        sequence += len(values)
        batches.append(data)

    def send(broker_id: int, data: bytes):
        req = P.ProduceRequest(
            acks=-1,
            timeout_ms=5000,
            topics=(
                P.ProduceTopic(
                    name=TOPIC, partitions=(P.ProducePartition(partition=0, records=data),)
                ),
            ),
        )
        r = call(c, broker_id, req, 8000)
        return None if r is None else r.topics[0].partitions[0]

    first = [send(leader, data) for data in batches]
    assert [r.error_code for r in first] == [0] * 5
    assert [r.base_offset for r in first] == [0, 3, 6, 9, 12]
    # the responses "were lost": the client retries them, after the leader died, elsewhere
    c.kill(leader)
    new = _leader(c, 0, exclude=leader)

    def resent():
        out = [send(new, data) for data in batches[-2:]]
        return out if all(r is not None and r.error_code == 0 for r in out) else None

    again = wait_until(resent, 20, "the retries to be answered")
    assert [r.base_offset for r in again] == [9, 12]  # the original offsets
    # a gap is refused, the next batch in sequence is accepted
    gap = with_producer(batch([b"gap"]), init.producer_id, init.producer_epoch, sequence + 1)
    assert send(new, gap).error_code == P.ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    nxt = with_producer(batch([b"next"]), init.producer_id, init.producer_epoch, sequence)
    assert send(new, nxt).base_offset == 15
    values = read_all(c, new, TOPIC, 0)
    assert len(values) == len(set(values)) == 16
    assert values[-1] == b"next"
