"""Client sessions of a real broker process are released (issue #12): when the client's
connection closes (clean close, kill -9 mid-request, the broker dropping it), after
connections.max.idle.ms of idleness (but never while a request is in flight), and a
client whose connection is replaced (reconnect, ROUTER_HANDOVER) keeps working.

The broker's open-session count comes from the BrokerStats API; the client that asks for
it is itself one session, so "no other session" is ``connection_count == 1``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from cluster_helpers import batch
from conftest import TEST_BROKER_CONFIGS, Wire
from rillet.transport import codec
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from rillet.launcher import LocalCluster
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)

MAX_REQUEST_BYTES = 65536  # socket.request.max.bytes: a bigger frame makes ZeroMQ drop the peer


def _cluster(directory: Path, configs: dict[str, str]):
    cluster = LocalCluster(directory, 1, {**TEST_BROKER_CONFIGS, **configs})
    try:
        cluster.start(timeout_s=30)
        wire = Wire(cluster.address(1))
        # the launcher's readiness probes have closed: their sessions go (each test checks
        # that only its own are left, so this waits without judging)
        deadline = time.monotonic() + 10
        while stats(wire).connection_count > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    except BaseException:  # the fixture's teardown never runs for a failed set-up
        cluster.stop(timeout_s=10)
        raise
    return cluster, wire


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    cluster, wire = _cluster(
        tmp_path_factory.mktemp("conns"), {"socket.request.max.bytes": str(MAX_REQUEST_BYTES)}
    )
    try:
        assert wire.create_topic("t").error_code == 0
        wait_until(lambda: wire.fetch("t", 0, 0).error_code == 0, 15, "t-0 led")
        yield cluster, wire
    finally:
        wire.close()
        cluster.stop(timeout_s=10)


def stats(wire: Wire) -> P.BrokerStatsResponse:
    return wire.call(P.BrokerStatsRequest())


# the bytes of one BrokerStats request (the largest correlation id's encoding): while it is
# answered, that request is all a settled broker holds
_STATS_BYTES = sum(len(f) for f in codec.encode_request(P.BrokerStatsRequest(), (1 << 63) - 1))


def _settled(wire: Wire) -> P.BrokerStatsResponse:
    """Stats once every other session is gone and every other request answered (each test
    leaves the broker so; a closed client's last request may still be held for a moment)."""
    return wait_until(
        lambda: (s := stats(wire)).connection_count == 1
        and s.queued_request_bytes <= _STATS_BYTES
        and s,
        10,
        "only our session open, nothing else in flight",
    )


def _ask(endpoint: ClientEndpoint, address: str) -> P.MetadataResponse:
    return endpoint.request(address, P.MetadataRequest(topics=()), 5000).result(10)


def test_sessions_are_released_when_clients_close(broker) -> None:
    cluster, wire = broker
    before = _settled(wire)
    clients = [ClientEndpoint() for _ in range(20)]
    for client in clients:
        _ask(client, cluster.address(1))
    opened = stats(wire)
    assert opened.connection_count == 21
    assert opened.connection_creation_total == before.connection_creation_total + 20
    for client in clients:
        client.close()
    after = _settled(wire)
    assert after.connection_close_disconnected_total == (
        before.connection_close_disconnected_total + 20
    )
    assert after.connection_close_idle_total == before.connection_close_idle_total


def test_a_client_killed_mid_request_releases_its_session_and_parked_fetch(broker) -> None:
    cluster, wire = broker
    before = _settled(wire)
    own = _STATS_BYTES  # at most: the BrokerStats request itself, in flight as it answers
    # a consumer's long poll on an empty partition, parked for a minute, then kill -9
    child = subprocess.Popen(
        [sys.executable, "-c", _PARKED_FETCH, cluster.address(1)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "sent"
        # the endpoint counts a request's bytes a moment before the router opens its session:
        # wait for both
        wait_until(
            lambda: (s := stats(wire)).queued_request_bytes > own and s.connection_count == 2,
            10,
            "the fetch parked and its session open",
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        after = wait_until(
            lambda: (
                (s := stats(wire)).connection_count == 1 and s.queued_request_bytes <= own and s
            ),
            10,
            "the killed client's session and its parked fetch released",
        )
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert after.connection_close_disconnected_total == (
        before.connection_close_disconnected_total + 1
    )
    # the partition still holds the abandoned waiter: data arriving must not hurt anything
    assert wire.produce("t", 0, batch([b"after the kill"])).error_code == 0
    assert [r.value for r in wire.fetch_all("t", 0)][-1] == b"after the kill"


_PARKED_FETCH = """
import sys, time, zmq
from rillet.transport import codec, protocol as P
sock = zmq.Context.instance().socket(zmq.DEALER)
sock.connect("tcp://" + sys.argv[1])
part = P.FetchPartition(partition=0, fetch_offset=1 << 40, partition_max_bytes=1 << 20)
req = P.FetchRequest(max_wait_ms=60_000, min_bytes=1 << 30,
                     topics=(P.FetchTopic(name="t", partitions=(part,)),))
sock.send_multipart(codec.encode_request(req, 1))
print("sent", flush=True)
time.sleep(600)
"""


def test_a_client_that_goes_silent_is_released_at_its_heartbeat_ttl(broker) -> None:
    """A client whose process hangs (SIGSTOP: the kernel keeps its TCP connection open, but
    no PING comes any more) is released once the TTL its heartbeats announced (3 s) runs
    out, as for a client cut off by a network partition."""
    cluster, wire = broker
    before = _settled(wire)
    child = subprocess.Popen(
        [sys.executable, "-c", _IDLE_CLIENT, cluster.address(1)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        assert stats(wire).connection_count == 2
        os.kill(child.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        after = wait_until(
            lambda: (s := stats(wire)).connection_count == 1 and s, 15, "the silent client released"
        )
        silent_s = time.monotonic() - stopped
    finally:
        child.kill()
        child.wait(10)
    assert after.connection_close_disconnected_total == (
        before.connection_close_disconnected_total + 1
    )
    assert 2.0 <= silent_s <= 8.0, silent_s  # the TTL (3 s), not an idle limit (10 min)


_IDLE_CLIENT = """
import signal, sys, time
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.protocol import MetadataRequest
endpoint = ClientEndpoint()  # heartbeats as every client: PING each 1 s, TTL 3 s
endpoint.request(sys.argv[1], MetadataRequest(topics=()), 5000).result(10)
# a client connected for a while: its first PING (1 s after connecting) carried the TTL
# to the broker; one that vanishes before it is released by connections.max.idle.ms
time.sleep(1.5)
print("ready", flush=True)
signal.pause()
"""


def test_a_client_the_broker_disconnects_reconnects_and_keeps_working(broker) -> None:
    cluster, wire = broker
    before = _settled(wire)
    address = cluster.address(1)
    with ClientEndpoint(max_request_bytes=4 * MAX_REQUEST_BYTES) as client:
        _ask(client, address)
        # a frame over socket.request.max.bytes: ZeroMQ in the broker drops the connection
        header = codec.encode_request(P.ApiVersionsRequest(), 99)[0]
        client.send_raw(address, [header, b"x" * (2 * MAX_REQUEST_BYTES)])
        dropped = wait_until(
            lambda: (
                (s := stats(wire)).connection_close_disconnected_total
                > before.connection_close_disconnected_total
                and s
            ),
            10,
            "the dropped connection's session released",
        )
        assert dropped.connection_count == 1
        # ZeroMQ reconnects on its own, under the same identity: a new session serves it
        wait_until(lambda: _answers(client, address), 10, "the client answered again")
        again = stats(wire)
        assert again.connection_count == 2
        assert again.connection_creation_total == before.connection_creation_total + 2


def _answers(client: ClientEndpoint, address: str) -> bool:
    try:
        return _ask(client, address).cluster_id != ""
    except Exception:  # noqa: BLE001 - the reconnect is under way
        return False


def test_a_handed_over_identity_keeps_its_session_when_the_old_connection_closes(broker) -> None:
    cluster, wire = broker
    before = _settled(wire)
    address = "tcp://" + cluster.address(1)

    def dealer() -> zmq.Socket:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IDENTITY, b"reconnecting-client")
        sock.connect(address)
        return sock

    def ask(sock: zmq.Socket, cid: int) -> P.MetadataResponse:
        sock.send_multipart(codec.encode_request(P.MetadataRequest(topics=()), cid))
        assert sock.poll(5000), "no answer"
        got_cid, response = codec.decode_response(sock.recv_multipart())
        assert got_cid == cid
        return response

    old = dealer()
    new = None
    try:
        ask(old, 1)
        new = dealer()  # connected once the old one has spoken (both racing would be another test)
        ask(new, 2)  # the broker hands the identity over to the new connection
        old.close(0)
        old = None
        # the old connection's close must not release the identity's session
        time_left = time.monotonic() + 1.0
        while time.monotonic() < time_left:  # a window for a wrong release to show up
            s = stats(wire)
            assert s.connection_close_disconnected_total == (
                before.connection_close_disconnected_total
            )
            assert s.connection_count == 2
        ask(new, 3)
        kept = stats(wire)
        assert kept.connection_creation_total == before.connection_creation_total + 1
    finally:
        for sock in (old, new):
            if sock is not None:
                sock.close(0)
    after = _settled(wire)
    assert after.connection_close_disconnected_total == (
        before.connection_close_disconnected_total + 1
    )


# ------------------------------------------------------------------------ idle expiry


@pytest.fixture(scope="module")
def idle_broker(tmp_path_factory):
    cluster, wire = _cluster(tmp_path_factory.mktemp("idle"), {"connections.max.idle.ms": "600"})
    try:
        assert wire.create_topic("t").error_code == 0
        wait_until(lambda: wire.fetch("t", 0, 0).error_code == 0, 15, "t-0 led")
        yield cluster, wire
    finally:
        wire.close()
        cluster.stop(timeout_s=10)


def test_an_idle_session_is_released_and_the_client_comes_back(idle_broker) -> None:
    cluster, wire = idle_broker
    address = cluster.address(1)
    with ClientEndpoint() as client:
        before = stats(wire)
        _ask(client, address)
        assert stats(wire).connection_count == 2
        # the client stays connected (ZMTP heartbeats flow) but sends no request
        idle = wait_until(
            lambda: (s := stats(wire)).connection_count == 1 and s, 10, "idle session released"
        )
        assert client.is_connected(address)
        assert idle.connection_close_idle_total >= before.connection_close_idle_total + 1
        assert (
            idle.connection_close_disconnected_total == before.connection_close_disconnected_total
        )
        assert _ask(client, address).cluster_id  # a new session serves it
        assert stats(wire).connection_creation_total == before.connection_creation_total + 2


def test_a_parked_fetch_is_not_idleness(idle_broker) -> None:
    cluster, wire = idle_broker
    with ClientEndpoint() as client:
        part = P.FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
        request = P.FetchRequest(
            max_wait_ms=2000,
            min_bytes=1 << 30,
            topics=(P.FetchTopic(name="t", partitions=(part,)),),
        )
        start = time.monotonic()
        response = client.request(cluster.address(1), request, 10_000).result(15)
        elapsed = time.monotonic() - start
    assert response.topics[0].partitions[0].error_code == 0
    # answered at its max_wait_ms (2 s), not cut short at connections.max.idle.ms (0.6 s)
    assert elapsed >= 1.9, elapsed
