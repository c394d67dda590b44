"""Chained fetches (issue #12): the consumer's I/O thread sends the next Fetch as soon as a
response with records arrives, without waiting for the application's next poll(); at most one
such fetch runs ahead of the consumer thread, and nothing is lost, repeated or reordered.

Against the in-memory broker over a real ZeroMQ endpoint; counted by requests and records.
"""

from __future__ import annotations

import threading
import time

import pytest

from rillet import Consumer, Producer, TopicPartition

pytestmark = pytest.mark.timeout(60)
TP = TopicPartition("t", 0)


def wait_until(predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.002)


def fetches(broker) -> int:
    return sum(1 for api in list(broker.requests) if api == "Fetch")


def parked_fetch(broker) -> int:
    """Fetch requests so far, once the one poll() left behind is parked at the broker."""
    wait_until(lambda: broker._parked, what="a parked fetch")
    return fetches(broker)


def produce(producer: Producer, *values: bytes) -> None:
    for v in values:
        producer.send("t", v, partition=0).get(10)


def poll_values(consumer: Consumer, n: int) -> list[bytes]:
    out: list[bytes] = []
    deadline = time.monotonic() + 10
    while len(out) < n and time.monotonic() < deadline:
        for records in consumer.poll(100).values():
            out.extend(r.value for r in records)
    return out


@pytest.fixture
def clients(broker):
    broker.create("t")
    p = Producer({"bootstrap.servers": broker.address}, linger_ms=0)
    c = Consumer({"bootstrap.servers": broker.address, "fetch.max.wait.ms": 5000})
    c.assign([TP])
    c.seek(TP, 0)
    try:
        yield p, c
    finally:
        c.close()
        p.close()


def test_a_response_with_records_sends_the_next_fetch_without_a_poll(broker, clients):
    p, c = clients
    produce(p, b"r0")
    assert poll_values(c, 1) == [b"r0"]
    # poll() left one fetch parked at offset 1. Records answer it while the application is
    # not polling: the I/O thread fetches again from offset 2 on its own (one fetch more).
    before = parked_fetch(broker)
    produce(p, b"r1")
    wait_until(lambda: fetches(broker) >= before + 1, what="the chained fetch")
    assert c._fetcher.chained_fetches >= 1
    # the chained fetch is answered in turn; its response chains nothing further, as the
    # consumer thread has not taken over the chained request yet
    produce(p, b"r2")
    produce(p, b"r3")
    assert poll_values(c, 3) == [b"r1", b"r2", b"r3"]


def test_chained_fetches_lose_repeat_and_reorder_nothing(broker, clients):
    p, c = clients
    got: list[bytes] = []
    for i in range(60):
        produce(p, b"%d" % i)
        if i % 3 == 2:
            got.extend(poll_values(c, i + 1 - len(got)))
    got.extend(poll_values(c, 60 - len(got)))
    assert got == [b"%d" % i for i in range(60)]
    assert c._fetcher.chained_fetches >= 1


def test_a_seek_while_a_chained_fetch_is_in_flight_discards_its_records(broker, clients):
    p, c = clients
    produce(p, b"a", b"b")
    assert poll_values(c, 2) == [b"a", b"b"]
    before = parked_fetch(broker)
    produce(p, b"c")  # answers the parked fetch: the I/O thread chains one from offset 3
    wait_until(lambda: fetches(broker) >= before + 1, what="the chained fetch")
    c.seek(TP, 1)
    produce(p, b"d")
    assert poll_values(c, 3) == [b"b", b"c", b"d"]


def test_a_paused_partition_is_not_chained(broker, clients):
    p, c = clients
    produce(p, b"x")
    assert poll_values(c, 1) == [b"x"]
    chained = c._fetcher.chained_fetches
    parked_fetch(broker)
    in_flight = [f for f, _ in c._fetcher._in_flight.values()]
    assert in_flight  # poll() left a fetch parked at offset 1
    c.pause(TP)
    produce(p, b"y")  # answers the fetch parked before the pause
    wait_until(lambda: all(f.done() for f in in_flight), what="the parked fetch's answer")
    assert c._fetcher.chained_fetches == chained
    c.resume(TP)
    assert poll_values(c, 1) == [b"y"]


def _chained_sends(c: Consumer, fail: bool = False, adopted: bool = False) -> list[list[bool]]:
    """Wrap the consumer's requests: for each one made off the consumer thread (a chained
    fetch, on the I/O thread), whether each fetch the consumer thread waits on was already
    answered; with ``fail`` the first such send raises instead (with ``adopted``, once the
    consumer thread has taken the chained fetch over)."""
    seen: list[list[bool]] = []
    me, real = threading.current_thread(), c._fetcher.client.request

    def request(*args, **kwargs):
        if threading.current_thread() is not me:
            seen.append([f.done() for f, _ in list(c._fetcher._in_flight.values())])
            if fail and len(seen) == 1:
                if adopted:
                    wait_until(lambda: not c._fetcher._chained, what="the adoption")
                raise ConnectionError("the chained send failed")
        return real(*args, **kwargs)

    c._fetcher.client.request = request
    return seen


def test_a_response_is_handed_over_before_its_chained_fetch_is_sent(broker, clients):
    """The consumer thread wakes while the I/O thread encodes and sends the chained fetch
    (issue #12: the hand-over waited for that send)."""
    p, c = clients
    produce(p, b"r0")
    assert poll_values(c, 1) == [b"r0"]
    parked_fetch(broker)
    seen = _chained_sends(c)
    produce(p, b"r1")  # answers the parked fetch: chained on the I/O thread
    wait_until(lambda: seen, what="the chained fetch")
    assert seen[0] == [True]  # the answered fetch was handed over first
    produce(p, b"r2")
    assert poll_values(c, 2) == [b"r1", b"r2"]


def test_a_chained_fetch_whose_send_fails_is_fetched_again(broker, clients):
    p, c = clients
    produce(p, b"r0")
    assert poll_values(c, 1) == [b"r0"]
    parked_fetch(broker)
    seen = _chained_sends(c, fail=True)
    produce(p, b"r1")
    wait_until(lambda: seen, what="the chained send")
    produce(p, b"r2")
    assert poll_values(c, 2) == [b"r1", b"r2"]  # the failed fetch retried, nothing lost


def test_a_chained_fetch_taken_over_before_its_send_failed_fails_retriably(broker, clients):
    p, c = clients
    produce(p, b"r0")
    assert poll_values(c, 1) == [b"r0"]
    parked_fetch(broker)
    chains = c._fetcher.chained_fetches
    seen = _chained_sends(c, fail=True, adopted=True)
    produce(p, b"r1")  # the I/O thread waits in the send until poll() takes the chain over
    assert poll_values(c, 1) == [b"r1"]
    produce(p, b"r2")
    assert poll_values(c, 1) == [b"r2"]  # the adopted fetch failed: backed off, fetched again
    # the failed chain, then one on the refetch's answer (not counted by thread: an answer
    # that beats add_done_callback is chained and sent on the consumer thread)
    assert seen and c._fetcher.chained_fetches >= chains + 2
    assert not c._fetcher._chained and not c._fetcher._unadopted


def test_a_poll_wakes_when_its_fetch_is_answered_not_at_its_timeout(broker, clients):
    """poll() waits on the fetcher's own signal, set by the I/O thread once a fetch is
    complete (issue #12: concurrent.futures.wait installed and removed a waiter on every
    fetch in flight each time). A record that answers a parked fetch ends a 30 s poll."""
    p, c = clients
    produce(p, b"r0")
    assert poll_values(c, 1) == [b"r0"]
    parked_fetch(broker)
    later = threading.Thread(target=produce, args=(p, b"r1"))
    start = time.monotonic()
    later.start()
    try:
        got = c.poll(30_000)
    finally:
        later.join(10)
    assert [r.value for records in got.values() for r in records] == [b"r1"]
    assert time.monotonic() - start < 15  # woken by the answer, not by the timeout
