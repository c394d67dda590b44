"""Which connection each peer last spoke on (transport/connections.py), and the server
endpoint reporting a peer gone when its connection closes (real loopback sockets)."""

from __future__ import annotations

import threading
import time

import pytest
import zmq
from rillet.transport import codec
from rillet.transport import protocol as P
from rillet.transport.connections import ConnectionTable
from rillet.transport.endpoint import ServerEndpoint

pytestmark = pytest.mark.timeout(30)


# ------------------------------------------------------------------------ the pure table


def test_a_peer_is_released_when_the_connection_it_spoke_on_closes() -> None:
    table = ConnectionTable()
    assert table.accepted(7) == []
    assert table.seen(b"a", 7)
    assert table.connected(b"a") and len(table) == 1
    assert table.disconnected(7) == [b"a"]
    assert not table.connected(b"a") and len(table) == 0
    assert table.disconnected(7) == []  # reported once


def test_handover_the_old_connection_closing_keeps_the_peer_that_spoke_on_the_new_one() -> None:
    table = ConnectionTable()
    table.accepted(7)
    table.seen(b"a", 7)
    table.accepted(9)  # the same identity reconnects (ROUTER_HANDOVER) and speaks there
    table.seen(b"a", 9)
    assert table.disconnected(7) == []
    assert table.connected(b"a")
    assert table.disconnected(9) == [b"a"]


def test_a_reused_descriptor_is_a_new_connection() -> None:
    table = ConnectionTable()
    table.accepted(7)
    table.seen(b"a", 7)
    assert table.disconnected(7) == [b"a"]
    table.accepted(7)  # the kernel hands the number out again, to another peer
    table.seen(b"b", 7)
    assert table.connected(b"b") and not table.connected(b"a")
    # an accept on a descriptor whose close was never reported ends the old connection
    assert table.accepted(7) == [b"b"]


def test_a_peer_is_tied_to_the_connection_open_on_the_descriptor_it_last_spoke_on() -> None:
    table = ConnectionTable()
    table.accepted(7)
    assert not table.tied(b"a", 7)  # not spoken yet
    table.seen(b"a", 7)
    assert table.tied(b"a", 7) and not table.tied(b"a", 8) and not table.tied(b"b", 7)
    table.disconnected(7)
    table.accepted(7)  # the number again, another connection
    assert not table.tied(b"a", 7)


def test_a_message_read_after_its_connection_closed_is_not_live() -> None:
    table = ConnectionTable()
    assert not table.seen(b"a", 5)  # never accepted (or already closed)
    assert not table.connected(b"a")


# --------------------------------------------------------------- the endpoint, real sockets


class Server:
    """Answers every request with ApiVersions; records the peers reported gone."""

    def __init__(self) -> None:
        self.gone: list[bytes] = []
        self.lock = threading.Lock()
        self.endpoint = ServerEndpoint("127.0.0.1:0", self.handle, on_disconnect=self.on_gone)
        self.endpoint.start()
        self.address = self.endpoint.address

    def handle(self, peer: bytes, frames: list[bytes], lease) -> None:
        cid, _ = codec.decode_request(frames)
        self.endpoint.reply(peer, cid, P.ApiVersionsResponse())
        lease.release()

    def on_gone(self, peer: bytes) -> None:
        with self.lock:
            self.gone.append(peer)


@pytest.fixture
def server():
    s = Server()
    try:
        yield s
    finally:
        s.endpoint.close()


def _dealer(address: str, identity: bytes | None) -> zmq.Socket:
    """A client socket; ``identity`` None: the routing id the server's ZeroMQ makes."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:
        sock.setsockopt(zmq.IDENTITY, identity)
    sock.connect(address)
    return sock


def _ask(sock: zmq.Socket) -> None:
    sock.send_multipart(codec.encode_request(P.ApiVersionsRequest(), 1))
    assert sock.poll(5000), "no answer"
    sock.recv_multipart()


def _wait(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_the_endpoint_reports_a_closed_connection_once(server) -> None:
    sock = _dealer(server.address, b"client-1")
    _ask(sock)
    _wait(lambda: server.endpoint.connected_peers == 1)
    sock.close(0)
    _wait(lambda: server.gone == [b"client-1"])
    assert server.endpoint.connected_peers == 0
    assert server.endpoint.disconnects == 1


def test_a_connection_that_never_spoke_reports_nothing(server) -> None:
    quiet = _dealer(server.address, b"quiet")
    talker = _dealer(server.address, b"talker")
    _ask(talker)
    quiet.close(0)
    talker.close(0)
    _wait(lambda: server.gone == [b"talker"])


def test_handover_closing_the_replaced_connection_keeps_the_peer(server) -> None:
    old = _dealer(server.address, b"same")
    _ask(old)
    new = _dealer(server.address, b"same")  # ROUTER_HANDOVER: the identity moves here
    _ask(new)
    old.close(0)
    # the old connection's close is seen (its descriptor leaves the table) ...
    _wait(lambda: server.endpoint._connections.open_connections == 1)
    assert server.gone == []  # ... and does not release the peer that moved on
    _ask(new)
    new.close(0)
    _wait(lambda: server.gone == [b"same"])


class _CountingMonitor:
    """The endpoint's monitor socket, its EVENTS polls counted."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock, self.polls = sock, 0

    def getsockopt(self, option):
        if option == zmq.EVENTS:
            self.polls += 1
        return self.sock.getsockopt(option)

    def __getattr__(self, name):
        return getattr(self.sock, name)


@pytest.mark.parametrize("identity", [None, b"chosen"])
def test_the_monitor_is_polled_per_message_only_for_a_peer_that_chose_its_id(
        server, identity) -> None:
    """Issue #12: the server polled its monitor before every message (one getsockopt each).
    A routing id ZeroMQ made names one connection, so once its peer spoke on the connection
    open on that descriptor no queued event can concern another connection of it; a chosen
    id can come back on a new connection (ROUTER_HANDOVER) and is checked every time."""
    monitor = _CountingMonitor(server.endpoint._monitor)
    server.endpoint._monitor = monitor
    sock = _dealer(server.address, identity)
    _ask(sock)  # the first message: the queued events (its ACCEPTED) first, then tied
    first = monitor.polls
    assert first >= 1
    for _ in range(20):
        _ask(sock)
    if identity is None:
        assert monitor.polls == first
    else:
        assert monitor.polls >= first + 20
    sock.close(0)
    _wait(lambda: len(server.gone) == 1)  # its close still releases it
    assert server.gone[0][:1] == (b"\x00" if identity is None else b"c")
    assert server.endpoint.connected_peers == 0
