"""linger.ms=0 sends at once, up to max.in.flight.requests.per.connection (issue #12).

With linger.ms > 0 the sender coalesces: while a request to a broker is in flight, a small
batch waits (up to 2 x linger.ms + 10 ms) for more records or the response. With
linger.ms=0 the application asked for no waiting, as in Kafka: the batch goes out in its own
request while the previous one is unanswered. Counted by requests, not by time.
"""

from __future__ import annotations

from concurrent.futures import Future

from rillet.accumulator import ProducerBatch, RecordAccumulator
from rillet.sender import Sender

ADDRESS = "127.0.0.1:9092"


class _Client:
    """Records requests; answers none of them (they stay in flight)."""

    def __init__(self) -> None:
        self.requests: list = []

    def leader_address(self, topic: str, partition: int) -> str:
        return ADDRESS

    def request(self, address: str, msg, timeout_ms: int) -> Future:
        self.requests.append((address, msg))
        return Future()

    def request_metadata_update(self, topics=None) -> None:
        pass


def _sender(linger_ms: int, max_in_flight: int = 5) -> tuple[Sender, _Client]:
    client = _Client()
    acc = RecordAccumulator(batch_size=16384, linger_ms=linger_ms)
    sender = Sender(
        client=client, accumulator=acc, acks=1, retries=0, retry_backoff_ms=100,
        retry_backoff_max_ms=1000, delivery_timeout_ms=120000, request_timeout_ms=30000,
        max_in_flight=max_in_flight, max_request_size=1 << 20,
        on_batch_drained=lambda b: None, name="t",
    )
    return sender, client


def _one_record_batch(now_ms: float) -> ProducerBatch:
    b = ProducerBatch("t", 0, codec=0, now_ms=now_ms)
    b.append(1, None, b"x" * 100, ())
    b.reserved = b.size
    return b


def _send_two(sender: Sender, now: float) -> None:
    for _ in range(2):  # the second while the first is in flight (never answered here)
        sender.waiting.append(_one_record_batch(now))
        sender._send_ready(now, flush=False)


def test_linger_zero_does_not_hold_a_batch_behind_an_in_flight_request() -> None:
    sender, client = _sender(linger_ms=0)
    _send_two(sender, now=1000.0)
    assert len(client.requests) == 2
    assert sender.in_flight[ADDRESS] == 2 and not sender.waiting


def test_linger_above_zero_still_coalesces_behind_an_in_flight_request() -> None:
    sender, client = _sender(linger_ms=5)
    _send_two(sender, now=1000.0)
    assert len(client.requests) == 1  # the second batch waits for more or the response
    assert len(sender.waiting) == 1


def test_linger_zero_respects_max_in_flight() -> None:
    sender, client = _sender(linger_ms=0, max_in_flight=2)
    for _ in range(4):
        sender.waiting.append(_one_record_batch(1000.0))
        sender._send_ready(1000.0, flush=False)
    assert len(client.requests) == 2
    # the held batches leave as one request once a response frees a slot
    assert sender.waiting
