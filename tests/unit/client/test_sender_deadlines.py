"""Every send completes within delivery.timeout.ms, and a request unanswered for
request.timeout.ms is given up, whatever the network does (rillet/_inflight.py).

The sender runs on its real thread against a fake network whose futures complete only when
the test says so: a reply that is never delivered is the failure being guarded against (a
lost reply once left a batch in flight for good and close() waiting in flush())."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest
from rillet.transport.protocol import (
    ProducePartitionResponse,
    ProduceResponse,
    ProduceTopicResponse,
)

from rillet._accumulator import RecordAccumulator
from rillet._sender import Sender
from rillet.errors import DeliveryTimeoutError
from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)
LEADER = "127.0.0.1:1"


class SilentNetwork:
    """Answers only the requests the test completes; ``answer`` says how (None: never)."""

    def __init__(self, answer=None) -> None:
        self.requests: list[tuple[float, object, Future]] = []
        self.answer = answer  # fn(n) -> response or None, n = 0, 1, ... (the request's index)
        self.metadata_updates = 0
        self.lock = threading.Lock()

    def leader_address(self, topic: str, partition: int) -> str:
        return LEADER

    def request_metadata_update(self, topics=None) -> None:
        self.metadata_updates += 1

    def request(self, address: str, msg, timeout_ms=None) -> Future:
        future: Future = Future()
        with self.lock:
            n = len(self.requests)
            self.requests.append((time.monotonic(), msg, future))
        response = self.answer(n) if self.answer else None
        if response is not None:
            future.set_result(response)
        return future


def produced(offset: int) -> ProduceResponse:
    part = ProducePartitionResponse(partition=0, error_code=0, base_offset=offset)
    return ProduceResponse(topics=(ProduceTopicResponse(name="t", partitions=(part,)),))


def start_sender(network, *, request_timeout_ms: int, delivery_timeout_ms: int,
                 max_in_flight: int = 5) -> tuple[Sender, RecordAccumulator]:
    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    sender = Sender(
        network, acc, acks=1, retries=1_000_000, retry_backoff_ms=10, retry_backoff_max_ms=50,
        delivery_timeout_ms=delivery_timeout_ms, request_timeout_ms=request_timeout_ms,
        max_in_flight=max_in_flight, max_request_size=1 << 20,
        on_batch_drained=lambda batch: None, name="test-sender")
    sender.start()
    return sender, acc


def send(acc: RecordAccumulator, value: bytes):
    batch, _, _ = acc.append("t", 0, 0, None, value, (), time.monotonic() * 1000)
    acc.wakeup.set()
    return batch.completion


def stop(sender: Sender) -> None:
    sender.closing = sender.force_close = True
    sender.wake()
    sender.join(5)
    assert not sender.is_alive()


def test_a_request_never_answered_is_retried_after_request_timeout_ms() -> None:
    # the first request's reply is lost; the retry is answered
    network = SilentNetwork(answer=lambda n: produced(7) if n >= 1 else None)
    sender, acc = start_sender(network, request_timeout_ms=300, delivery_timeout_ms=10_000,
                               max_in_flight=1)
    try:
        completion = send(acc, b"v")
        assert completion.wait(5), "the batch hung in flight"
        assert completion.error is None and completion.base_offset == 7
        (first, *_), (retried, *_) = network.requests[:2]
        assert 0.3 <= retried - first < 3.0, "retried at request.timeout.ms, not before"
        assert network.metadata_updates >= 1  # a timeout may mean the leader moved
        assert sender.in_flight.to(LEADER) == 0 and sender.in_flight.abandoned == 1
        # max.in.flight=1: the abandoned request no longer holds the connection's only slot
        later = send(acc, b"w")
        assert later.wait(5) and later.base_offset == 7
    finally:
        stop(sender)


def test_a_late_reply_to_an_abandoned_request_is_ignored() -> None:
    network = SilentNetwork(answer=lambda n: produced(3) if n >= 1 else None)
    sender, acc = start_sender(network, request_timeout_ms=200, delivery_timeout_ms=10_000)
    try:
        completion = send(acc, b"v")
        assert completion.wait(5) and completion.base_offset == 3
        network.requests[0][2].set_result(produced(99))  # the lost reply turns up after all
        sender.wake()
        wait_until(lambda: not sender.responses, 5, "the late reply to be handled")
        assert completion.base_offset == 3 and completion.error is None
        assert len(sender.in_flight) == 0 and not sender.incomplete
    finally:
        stop(sender)


def test_a_batch_in_flight_fails_at_delivery_timeout_ms_even_if_nothing_answers() -> None:
    network = SilentNetwork()  # never answers, never fails: the request stays in flight
    sender, acc = start_sender(network, request_timeout_ms=60_000, delivery_timeout_ms=400)
    try:
        started = time.monotonic()
        completion = send(acc, b"v")
        assert completion.wait(5), "the batch hung in flight"
        assert isinstance(completion.error, DeliveryTimeoutError)
        assert 0.4 <= time.monotonic() - started < 3.0
        assert len(network.requests) == 1  # failed while in flight, not after a retry
        assert not sender.incomplete
        # its request is still in flight (until request.timeout.ms): a reply now changes
        # nothing and does not break the sender
        network.requests[0][2].set_result(produced(5))
        sender.wake()
        wait_until(lambda: len(sender.in_flight) == 0, 5, "the late reply to be handled")
        assert isinstance(completion.error, DeliveryTimeoutError)
    finally:
        stop(sender)


def test_every_send_completes_within_delivery_timeout_when_no_reply_ever_comes() -> None:
    # both deadlines at work: requests are abandoned and retried until the batches expire
    network = SilentNetwork()
    sender, acc = start_sender(network, request_timeout_ms=150, delivery_timeout_ms=700,
                               max_in_flight=1)
    try:
        started = time.monotonic()
        completions = [send(acc, f"v{i}".encode()) for i in range(20)]
        for c in completions:
            assert c.wait(5), "a batch hung"
        assert all(isinstance(c.error, DeliveryTimeoutError) for c in completions)
        assert time.monotonic() - started < 3.0
        assert len(network.requests) >= 3  # abandoned at 150 ms and retried
        assert not sender.incomplete
    finally:
        stop(sender)


def test_in_flight_bookkeeping() -> None:
    from rillet.logstore.batch import Codec

    from rillet._accumulator import ProducerBatch
    from rillet._inflight import InFlightRequests

    flights = InFlightRequests(request_timeout_ms=100, delivery_timeout_ms=1000)
    old, new = ProducerBatch("t", 0, Codec.NONE, 0), ProducerBatch("t", 1, Codec.NONE, 50)
    a = flights.add("b1", [old], Future(), now_ms=10)
    b = flights.add("b1", [new], Future(), now_ms=20)
    c = flights.add("b2", [new], Future(), now_ms=30)
    assert (flights.to("b1"), flights.to("b2"), len(flights)) == (2, 1, 3)
    assert flights.next_deadline_ms() == 110  # a's request deadline
    b.future.set_result(None)  # answered, its reply not handled yet: not overdue
    assert flights.overdue(125) == [a]
    assert flights.to("b1") == 1 and not flights.answered(a)  # a late reply to a: ignored
    assert flights.answered(b) and flights.to("b1") == 0
    assert list(flights.expiring(1049)) == [] and list(flights.expiring(1050)) == [c]
    assert flights.abandoned == 1 and len(flights) == 1


def test_batches_waiting_for_a_producer_id_fail_at_delivery_timeout_ms() -> None:
    # idempotence: nothing is sent before InitProducerId succeeds; if it never does (no
    # controller reachable), the waiting batches must still fail in time, not wait forever
    from types import SimpleNamespace

    from rillet.errors import RequestTimedOutError

    class NoController(SilentNetwork):
        config = SimpleNamespace(enable_idempotence=True)

        def call_controller(self, msg, timeout_ms=None):
            raise RequestTimedOutError("no controller answered")

    network = NoController()
    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    sender = Sender(
        network, acc, acks=-1, retries=1_000_000, retry_backoff_ms=10, retry_backoff_max_ms=50,
        delivery_timeout_ms=400, request_timeout_ms=60_000, max_in_flight=5,
        max_request_size=1 << 20, on_batch_drained=lambda batch: None, name="test-sender")
    assert sender.idempotent
    sender.start()
    try:
        completion = send(acc, b"v")
        assert completion.wait(5), "the batch waited for a producer id forever"
        assert isinstance(completion.error, DeliveryTimeoutError)
        assert network.requests == [] and not sender.incomplete
    finally:
        stop(sender)
