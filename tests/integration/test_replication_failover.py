"""Failover on real processes: 3 brokers, RF=3, min.insync.replicas=2, acks=all, idempotence
on. The leader of a busy partition is killed (kill -9) and restarted while a producer writes
to 3 partitions; the history (tests/history.py) must show 0 lost, 0 duplicates, order kept.
Slow variants: five kills, kills of random partitions' leaders with two producers writing to
the same partitions (the offsets each ack names are checked), a leader paused (SIGSTOP)
that resumes as a zombie. A produce whose response is lost is re-sent to the new leader: it
gets its original offsets and nothing is written twice (the producer state is replicated)."""

from __future__ import annotations

import os
import random
import signal

import pytest
from cluster_helpers import FAST, batch, call, partition_meta, read_all, wait_until
from fault_run import TOPIC, ProduceRun, create_topic, drain_and_check, leader_of
from rillet.logstore.batch_fast import with_producer
from rillet.transport import protocol as P

pytestmark = [pytest.mark.integration]


def _run_faults(
    c, faults: int, *, pause: bool = False, seed: int | None = None, producers: int = 1
) -> None:
    """``faults`` times: kill -9 (or, with ``pause``, SIGSTOP) the leader of partition 0 (of a
    random partition with ``seed``), keep producing through the new leader, then restart (or
    SIGCONT: a zombie that still believes it leads) the broker and wait for it in the ISR."""
    rng = random.Random(seed)
    create_topic(c, TOPIC, 3)
    run = ProduceRun(c, producers)
    try:
        for partition in range(3):
            run.wait_for_acks(partition, 20, 30, f"first acks on partition {partition}")
        for k in range(faults):
            partition = 0 if seed is None else rng.randrange(3)
            victim = leader_of(c, partition)
            pid = c.pid(victim)
            if pause:
                os.kill(pid, signal.SIGSTOP)
            else:
                c.kill(victim)
            try:
                leader_of(c, partition, exclude=victim)  # a new leader from the ISR
                # keep producing through the new leader (acks=all with the 2 left in the ISR)
                run.wait_for_acks(partition, 30, 60, f"acks after fault {k + 1} ({victim})")
            finally:
                if pause:
                    os.kill(pid, signal.SIGCONT)
            if not pause:
                c.start_broker(victim)
                c.wait_ready(30, broker_ids=[victim])

            def back_in_sync(victim=victim):
                metas = [partition_meta(c, TOPIC, p) for p in range(3)]
                return all(m is not None and victim in m.isr for m in metas)

            wait_until(back_in_sync, 60, f"broker {victim} back in every ISR")
        for partition in range(3):
            run.wait_for_acks(partition, 20, 60, f"acks on partition {partition} at the end")
    except BaseException:
        print("SENDER STATE\n" + run.dump())
        raise
    finally:
        run.finish()
    drain_and_check(c, run)


@pytest.mark.timeout(240)  # the default suite's bounded schedule (~12 s)
def test_killing_the_leader_twice_loses_and_duplicates_nothing(cluster_factory):
    _run_faults(cluster_factory(3, FAST), 2)


@pytest.mark.slow  # the full schedule (~30 s alone); twice runs by default
@pytest.mark.timeout(400)
def test_killing_the_leader_five_times_loses_and_duplicates_nothing(cluster_factory):
    _run_faults(cluster_factory(3, FAST), 5, producers=2)


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_killing_leaders_of_random_partitions_loses_and_duplicates_nothing(cluster_factory):
    _run_faults(cluster_factory(3, FAST), 6, seed=7, producers=2)


@pytest.mark.slow
@pytest.mark.timeout(500)
def test_a_paused_leader_resuming_as_a_zombie_loses_and_duplicates_nothing(cluster_factory):
    _run_faults(cluster_factory(3, FAST), 4, pause=True, seed=3)


@pytest.mark.timeout(120)
def test_a_produce_whose_response_was_lost_is_not_written_twice_after_failover(cluster_factory):
    c = cluster_factory(3, FAST)
    create_topic(c, TOPIC, 1)
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
    leader = leader_of(c, 0)
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
    new = leader_of(c, 0, exclude=leader)

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
