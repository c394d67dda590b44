"""The bound on request bytes in flight (``queued.max.request.bytes``) at the ServerEndpoint:
leases, pausing reads at the bound, resuming on release, never deadlocking."""

from __future__ import annotations

import threading
import time

import pytest
from rillet.transport import codec
from rillet.transport import endpoint as ep
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint, ServerEndpoint

pytestmark = pytest.mark.timeout(30)


class HoldingServer:
    """Keeps every lease until the test releases it; answers once released."""

    def __init__(self, max_queued_bytes: int) -> None:
        self.held: list = []  # (peer, cid, lease)
        self.lock = threading.Lock()
        self.endpoint = ServerEndpoint(
            "127.0.0.1:0", self.handle, max_queued_bytes=max_queued_bytes
        )
        self.endpoint.start()
        self.address = self.endpoint.address.removeprefix("tcp://")

    def handle(self, peer: bytes, frames: list[bytes], lease) -> None:
        cid, _ = codec.decode_request(frames)
        with self.lock:
            self.held.append((peer, cid, lease))

    def count(self) -> int:
        with self.lock:
            return len(self.held)

    def release_all(self) -> int:
        with self.lock:
            held, self.held = self.held, []
        for peer, cid, lease in held:
            self.endpoint.reply(peer, cid, P.ProduceResponse())
            lease.release()
        return len(held)


def _produce(size: int) -> P.ProduceRequest:
    part = P.ProducePartition(partition=0, records=b"r" * size)
    return P.ProduceRequest(acks=1, topics=(P.ProduceTopic(name="t", partitions=(part,)),))


def _wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def client():
    c = ClientEndpoint()
    try:
        yield c
    finally:
        c.close()


def test_reading_stops_at_the_bound_and_resumes_on_release(client) -> None:
    server = HoldingServer(max_queued_bytes=250_000)
    try:
        futures = [client.request(server.address, _produce(100_000), 10_000) for _ in range(8)]
        _wait(lambda: server.count() == 3, 5, "three requests admitted")
        # 3 x ~100 kB >= 250 kB: the endpoint stops reading, nothing more is handed over
        assert server.endpoint.queued_bytes >= 250_000
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:  # observe: no fourth request may arrive
            assert server.count() == 3
            time.sleep(0.02)
        assert server.endpoint.paused_reads >= 1
        released = 0
        while released < 8:
            _wait(lambda: server.count() > 0, 5, "more requests after releasing")
            released += server.release_all()
        assert all(f.result(5) is not None for f in futures)
        assert server.endpoint.queued_bytes == 0
        assert server.endpoint.peak_queued_bytes < 250_000 + 101_000
    finally:
        server.endpoint.close()


def test_a_request_larger_than_the_bound_is_admitted_when_nothing_else_is_in_flight(
    client,
) -> None:
    server = HoldingServer(max_queued_bytes=10_000)
    try:
        first = client.request(server.address, _produce(50_000), 10_000)
        second = client.request(server.address, _produce(50_000), 10_000)
        _wait(lambda: server.count() == 1, 5, "the big request admitted alone")
        assert server.release_all() == 1
        _wait(lambda: server.count() == 1, 5, "the second one after the first is released")
        server.release_all()
        assert first.result(5) is not None and second.result(5) is not None
    finally:
        server.endpoint.close()


def test_release_is_idempotent_and_unbounded_endpoints_count_too() -> None:
    endpoint = ServerEndpoint("127.0.0.1:0", lambda *a: None)
    try:
        lease = endpoint._lease(1000)
        assert endpoint.queued_bytes == 1000
        lease.release()
        lease.release()
        assert endpoint.queued_bytes == 0
        assert not endpoint._full()  # -1: never full
    finally:
        endpoint.close()


def test_a_lease_never_released_expires_so_reading_cannot_stop_for_good(
    client, monkeypatch
) -> None:
    monkeypatch.setattr(ep, "LEASE_EXPIRY_S", 0.3)
    server = HoldingServer(max_queued_bytes=1000)  # holds forever unless the test releases
    try:
        client.request(server.address, _produce(5000), 10_000)
        client.request(server.address, _produce(5000), 10_000)
        _wait(lambda: server.count() == 2, 5, "the second request after the first expired")
        assert server.endpoint.expired_leases >= 1
    finally:
        server.endpoint.close()
