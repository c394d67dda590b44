"""I/O rounds (rillet/_sender.py): a Produce response that arrives while the sender thread is
idle is handled on the thread that delivered it, which sends what waited for it at once;
user code (completions, delivery callbacks) still runs on the sender thread, in order.

The sender runs on its real thread against a fake network whose futures the test completes:
the test thread is the endpoint's I/O thread here."""

from __future__ import annotations

import threading
import time

import pytest
from rillet.logstore.batch import decode_records

from tests.support import wait_until
from tests.unit.client.test_sender_deadlines import SilentNetwork, produced, start_sender, stop

pytestmark = pytest.mark.timeout(30)
TP = ("t", 0)


class ThreadNetwork(SilentNetwork):
    """Also records the thread each request was made on."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []

    def request(self, address, msg, timeout_ms=None):
        self.threads.append(threading.current_thread().name)
        return super().request(address, msg, timeout_ms)


def start(network):
    # one request in flight: what waits is held until its answer (with more in flight, the
    # coalescing hold lets it go after 2 x linger.ms + 10 ms, a race for these tests)
    return start_sender(network, request_timeout_ms=30_000, delivery_timeout_ms=60_000,
                        max_in_flight=1)


@pytest.fixture
def running():
    """(network, sender, accumulator, callbacks seen) with the sender's thread running; the
    sender is stopped after the test."""
    network = ThreadNetwork()
    sender, acc = start(network)
    try:
        yield network, sender, acc, []
    finally:
        stop(sender)


def send(acc, value: bytes, seen: list):
    """What Producer.send does (the accumulator, then a wake-up only if the sender needs
    one); the delivery callback records its thread and the record."""
    now = time.monotonic() * 1000
    batch, index, full = acc.append("t", 0, 0, None, value, (), now)
    if index == 0 and acc.sender_idle and TP not in acc.held:
        acc.wakeup.set()
    batch.completion.add_callback(
        index, 0, lambda err, md: seen.append((threading.current_thread().name, value, err)),
        False)
    return batch.completion


def one_in_flight_one_held(network, sender, acc, seen: list):
    """a sent and in flight (unanswered), b held behind it, the sender thread idle; a's
    completion."""
    first = send(acc, b"a", seen)
    wait_until(lambda: len(network.requests) == 1, 5, "the first request")
    send(acc, b"b", seen)
    acc.wakeup.set()  # (the sender would hold it anyway: make sure it looked)
    wait_until(lambda: TP in acc.held and idle(sender), 5, "b held behind the request")
    return first


def values(request) -> list[bytes]:
    (topic,) = request.topics
    (part,) = topic.partitions
    return [r.value for r in decode_records(part.records)]


def idle(sender) -> bool:
    """The sender thread drained everything and waits for a reason to go on (it takes its
    turn again only once woken)."""
    acc = sender.acc
    return (not acc._open and not acc._ready and not sender._turn.locked()
            and not acc.wakeup.is_set())


def test_a_response_sends_what_waited_for_it_on_the_delivering_thread(running) -> None:
    network, sender, acc, seen = running
    first = one_in_flight_one_held(network, sender, acc, seen)
    send(acc, b"c", seen)
    acc.wakeup.set()
    wait_until(lambda: TP in acc.held and idle(sender), 5, "c held too")
    assert len(network.requests) == 1
    me = threading.current_thread().name
    network.requests[0][2].set_result(produced(0))  # the "I/O thread" delivers
    # handled here: the next request left before set_result returned, from this thread
    assert len(network.requests) == 2 and network.threads == ["test-sender", me]
    assert values(network.requests[1][1]) == [b"b", b"c"]
    assert sender.io_rounds == 1
    # user code is the sender thread's, never the delivering thread's
    assert first.wait(5) and first.base_offset == 0
    wait_until(lambda: len(seen) == 1, 5, "a's callback")
    network.requests[1][2].set_result(produced(1))
    wait_until(lambda: len(seen) == 3, 5, "b's and c's callbacks")
    assert [(v, err) for _, v, err in seen] == [(b"a", None), (b"b", None), (b"c", None)]
    assert {thread for thread, _, _ in seen} == {"test-sender"}


def test_a_held_partitions_new_records_do_not_wake_the_sender(running) -> None:
    network, sender, acc, seen = running
    one_in_flight_one_held(network, sender, acc, seen)
    for v in (b"c", b"d", b"e"):
        acc.append("t", 0, 0, None, v, (), time.monotonic() * 1000)
    assert not acc.wakeup.is_set()  # no wake-up for a held partition (nor a round)
    assert sender.io_rounds == 0 and len(network.requests) == 1
    network.requests[0][2].set_result(produced(0))
    assert values(network.requests[1][1]) == [b"b", b"c", b"d", b"e"]
    network.requests[1][2].set_result(produced(1))
    wait_until(lambda: not sender.incomplete and TP not in acc.held, 5, "all answered")


def test_a_busy_sender_thread_is_woken_instead(running) -> None:
    network, sender, acc, seen = running
    one_in_flight_one_held(network, sender, acc, seen)
    with sender._turn:  # the sender thread is in a round
        network.requests[0][2].set_result(produced(0))
        assert len(network.requests) == 1 and sender.io_rounds == 0
        assert acc.wakeup.is_set()  # it goes on once its round is over
    wait_until(lambda: len(network.requests) == 2, 5, "the sender thread to send b")
    assert network.threads == ["test-sender", "test-sender"]


def test_no_round_on_the_delivering_thread_once_the_sender_stopped() -> None:
    network = ThreadNetwork()
    sender, acc = start(network)
    seen: list = []
    send(acc, b"a", seen)
    wait_until(lambda: len(network.requests) == 1, 5, "the first request")
    stop(sender)  # force-closed: what was in flight fails, nothing more is sent
    network.requests[0][2].set_result(produced(0))
    assert len(network.requests) == 1 and sender.io_rounds == 0
    wait_until(lambda: len(seen) == 1, 5, "a's callback")
    assert seen[0][2] is not None


def test_only_a_new_batch_of_a_held_partition_skips_the_wake_up() -> None:
    """The rule of RecordAccumulator.append and of Producer.send's inlined copy."""
    from rillet._accumulator import RecordAccumulator

    acc = RecordAccumulator(batch_size=16384, linger_ms=0)
    acc.held = {TP}
    acc.append("t", 0, 0, None, b"x", (), 0.0)
    assert not acc.wakeup.is_set()
    acc.append("t", 1, 0, None, b"x", (), 0.0)  # another partition: the sender must look
    assert acc.wakeup.is_set()


def test_flush_waits_for_a_completion_an_io_round_left_to_the_sender_thread(running) -> None:
    """An I/O round takes an answered batch out of the incomplete ones but leaves its
    completion to the sender thread: until that thread has run it, flush() must still see it
    (else flush() returned and the record's future was not done yet: a streams task's
    ``future.get(0)`` after its flush failed that way in a fresh-clone CI run)."""
    network, sender, acc, seen = running
    completion = send(acc, b"a", seen)
    wait_until(lambda: len(network.requests) == 1, 5, "the request")
    (batch,) = sender.incomplete
    with sender._turn:  # as an I/O round does it, the sender thread kept out
        sender._deferred = []
        sender._finish(batch, 0, None)
        deferred, sender._deferred = sender._deferred, None
        assert batch not in sender.incomplete and not completion.done
        assert completion in sender.pending_completions()
        sender._completions.extend(deferred)
        sender._run_completions()
    assert completion.done and completion.base_offset == 0
    assert completion not in sender.pending_completions()
