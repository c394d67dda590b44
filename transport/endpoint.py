"""ZeroMQ endpoints: with transport/security.py, the only modules of rillet that import zmq.

Each endpoint owns its sockets on ONE background I/O thread; other threads hand it work
through a queue and a wake-up pipe, so every public method here is thread-safe.

* ``ServerEndpoint`` (broker side): one ROUTER socket bound to ``tcp://host:port`` with
  ZeroMQ's MAXMSGSIZE set (a peer sending a bigger frame is disconnected by ZeroMQ itself).
  Each inbound message is handed to ``handler(peer, frames, lease)`` on the I/O thread; the
  handler must not block (it passes the frames to an actor). ``send(peer, frames)`` queues a
  reply. ``lease.release()`` says the request is finished with: with ``max_queued_bytes``
  set, the endpoint stops reading while the leased bytes exceed it (see ``Lease``).
  With ``curve=CurveKeys`` it is a CURVE server on its own ZeroMQ context whose ZAP handler
  admits only clients holding the same key pair (transport/security.py). With
  ``peer_info`` each request's ``Lease`` carries its connection's ZAP User-Id and peer IP
  address (the authorizer's principal and host: actors/authorize.py). With
  ``on_disconnect(peer)`` it also says, on the I/O thread, when the connection a peer last
  spoke on has closed (a socket monitor joined to each message's source descriptor:
  transport/connections.py), once per peer and connection.
* ``ClientEndpoint`` (client side): one DEALER socket per broker address, created on first
  use. ``request(address, msg, timeout_ms)`` encodes the request on the caller's thread and
  returns a ``concurrent.futures.Future`` completed by the I/O thread with the decoded
  response, or failed with ``RequestTimedOutError``, ``BrokerUnavailableError`` (timed out
  and not connected), ``ProtocolError`` (the broker answered with an ErrorResponse, or sent
  something malformed), ``RequestTooLargeError`` or ``EndpointClosedError``. Future callbacks
  run on the I/O thread: keep them short and never block in them. A request made in such a
  callback (the producer's and the replica fetcher's I/O rounds, a consumer's chained fetch)
  goes to ZeroMQ at once when its connection is up and nothing is queued before it, without
  waiting for the rest of the callback and a turn of the loop. With ``curve=CurveKeys``
  every connection is a CURVE client of a server with the same key pair.

Liveness: every client connection runs ZeroMQ heartbeats (``HEARTBEAT_IVL``, a PING each
``heartbeat_ivl_ms``; no traffic for ``heartbeat_timeout_ms`` closes the connection), so a
peer cut off by a network partition is noticed within seconds instead of at TCP's ~15 min
retransmission limit (the server does not PING: see ``ServerEndpoint``); clients abandon a connect unanswered for ``CONNECT_TIMEOUT_MS`` and try
again, so they are back within a reconnect interval of the network healing. The server sets ``ROUTER_HANDOVER``: a peer that reconnects with the
identity of a connection the server still holds (a half-dead pipe whose FIN was lost in the
partition) takes the identity over at once; without it, ZeroMQ would park the new connection
unread until the old one died, and a broker with a fixed identity would never rejoin.

Usage::

    from rillet.transport.endpoint import ClientEndpoint
    from rillet.transport.protocol import MetadataRequest

    with ClientEndpoint() as endpoint:
        future = endpoint.request("127.0.0.1:9092", MetadataRequest(), timeout_ms=5000)
        metadata = future.result()          # MetadataResponse
        for topic in metadata.topics:
            print(topic.name, [p.leader for p in topic.partitions])
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from .codec import (
    MAX_FRAME_BYTES,
    MAX_HEADER_BYTES,
    decode_response,
    encode_request,
    encode_response,
)
from .conn_limits import ConnectionLimits
from .connections import ConnectionTable
from .errors import (
    AuthenticationFailedError,
    BrokerUnavailableError,
    EndpointClosedError,
    ProtocolError,
    RequestTimedOutError,
    RequestTooLargeError,
)
from .protocol import ErrorResponse, ProduceRequest
from .security import CurveKeys, ZapGuard, client_options, server_options

Frames = Sequence[bytes | bytearray | memoryview]

HEARTBEAT_IVL_MS = 1000  # a PING on an idle connection every second
HEARTBEAT_TIMEOUT_MS = 3000  # no traffic (not even a PONG) for 3 s: the connection is dead
CONNECT_TIMEOUT_MS = 2000  # a TCP connect (SYN) unanswered this long is abandoned and retried
_MONITOR_EVENT = struct.Struct("=HI")  # a ZeroMQ socket monitor event's first frame
# plain ints: pyzmq's constants are enum flags, and ``flag & flag`` runs enum.py per message
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
LEASE_EXPIRY_S = 330.0  # longer than any request may legally be parked (fetch: 300 s)


def _readable(sock: zmq.Socket) -> bool:
    """A message can be read now (a getsockopt: cheaper than the zmq.Again a recv raises,
    which costs an exception and an import inside pyzmq)."""
    return bool(sock.getsockopt(_EVENTS) & _POLLIN)


def _set_heartbeats(sock: zmq.Socket, ivl_ms: int, timeout_ms: int) -> None:
    """ZMTP heartbeats; ``ivl_ms <= 0`` disables them (TTL: the peer applies our timeout too,
    so a peer that never PINGs itself still drops a connection that went silent)."""
    if ivl_ms <= 0:
        return
    sock.setsockopt(zmq.HEARTBEAT_IVL, ivl_ms)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, timeout_ms)
    # TTL travels in the PING in units of 100 ms (max 6553.5 s)
    sock.setsockopt(zmq.HEARTBEAT_TTL, min(max(timeout_ms // 100 * 100, 100), 6_553_500))


def tcp_address(address: str) -> str:
    """``host:port`` -> ``tcp://host:port``; addresses with a scheme are returned unchanged."""
    return address if "://" in address else f"tcp://{address}"


class _Waker:
    """A pipe the I/O thread polls; ``wake()`` from any thread makes its poll return."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._pending = False
        self._lock = threading.Lock()

    def wake(self) -> None:
        with self._lock:
            if self._pending:
                return
            self._pending = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.write_fd, b"x")

    def drain(self) -> None:
        """Call before taking queued work: read first, then clear the flag, so a wake() in
        between either leaves a byte in the pipe or its work is seen by the caller."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self.read_fd, 4096)
        with self._lock:
            self._pending = False

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


# ------------------------------------------------------------------------------ server side


class Lease:
    """The bytes of one inbound request, counted against the endpoint's in-flight bound
    until ``release()`` (thread-safe, idempotent): call it when the response is sent or the
    request dropped. Leases older than ``LEASE_EXPIRY_S`` are released by the endpoint
    itself (counted in ``expired_leases``), so a request that is never answered can stall
    reading for a while, never for good."""

    __slots__ = ("nbytes", "admitted", "user_id", "peer_address", "_endpoint", "_released")

    def __init__(self, endpoint: ServerEndpoint | None, nbytes: int, admitted: float) -> None:
        self.nbytes = nbytes
        self.admitted = admitted
        # with ``peer_info``: the ZAP User-Id of the connection the request came on (on a
        # CURVE listener with ``principal_of``, the client's principal User:NAME:
        # transport/security.py; None on a plaintext one) and the peer's IP address
        self.user_id: str | None = None
        self.peer_address: str | None = None
        self._endpoint = endpoint
        self._released = False

    def release(self) -> None:
        if self._endpoint is not None:
            self._endpoint._release(self)


class ServerEndpoint:
    """A ROUTER socket on one I/O thread. ``handler(peer, frames, lease)`` runs on that thread.

    ``bind`` is ``host:port`` (port 0 picks a free one; see ``address``). ``max_message_bytes``
    is ZeroMQ's MAXMSGSIZE: the cap on any single inbound frame. ``max_queued_bytes``
    (Kafka's ``queued.max.request.bytes``; -1: unbounded) bounds the bytes of requests handed
    to the handler and not yet released: over it, the endpoint stops reading the socket (each
    peer's ZeroMQ pipe then fills up to ``RCVHWM`` messages, which the bound does not cover,
    and TCP pushes back on the sender) until releases bring it under again. A request is always admitted when nothing
    else is in flight, so one request larger than the bound cannot deadlock the broker.
    ``on_disconnect(peer)``: see the module docstring; it must not block either.
    """

    def __init__(
        self,
        bind: str,
        handler: Callable[[bytes, list[bytes], Lease], None],
        *,
        max_message_bytes: int = MAX_FRAME_BYTES + MAX_HEADER_BYTES,
        max_queued_bytes: int = -1,
        heartbeat_ivl_ms: int = 0,
        heartbeat_timeout_ms: int = HEARTBEAT_TIMEOUT_MS,
        rcvhwm: int = 10_000,
        name: str = "rillet-server-io",
        curve: CurveKeys | None = None,
        on_disconnect: Callable[[bytes], None] | None = None,
        principal_of: Callable[[bytes], str | None] | None = None,
        peer_info: bool = False,
        limits: ConnectionLimits | None = None,
        handshake_ivl_ms: int | None = None,
    ) -> None:
        self._handler = handler
        # max.connections / max.connections.per.ip (transport/conn_limits.py): needs the monitor
        self.limits = limits if limits is not None and limits.limited else None
        self._on_disconnect = on_disconnect
        self._guard: ZapGuard | None = None
        self._peer_info = peer_info
        if curve is not None:
            # its own context: the ZAP handler must not judge the other listener's peers
            self._ctx = zmq.Context()
            self._guard = ZapGuard(self._ctx, curve, principal_of)
        else:
            self._ctx = zmq.Context.instance()
        self._socket = self._ctx.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        for option, value in (server_options(curve) if curve else {}).items():
            self._socket.setsockopt(option, value)
        self._socket.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self._socket.setsockopt(zmq.SNDHWM, 100_000)
        # ZeroMQ reads ahead up to RCVHWM messages per peer whatever we do, and that
        # read-ahead escapes the bound. It stays large on purpose: a small one makes stopped
        # input common, and libzmq 4.3.5 aborts the process (assert !_io_error in
        # stream_engine_base.cpp) when a connection whose input is stopped is reset with a
        # heartbeat PING still buffered (tests/unit/transport/test_liveness.py).
        self._socket.setsockopt(zmq.RCVHWM, rcvhwm)
        self._socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        if handshake_ivl_ms is not None:  # handshake.timeout.ms (docs/security.md): a peer
            # that has not finished the ZMTP (and CURVE) handshake by then is disconnected
            self._socket.setsockopt(zmq.HANDSHAKE_IVL, handshake_ivl_ms)
        # No PINGs from the server by default: libzmq (4.3.5 and master) asserts in
        # out_event when a PING timer fires on a connection whose input is stopped (its
        # pipe full: RCVHWM, or reads paused at the bound) after the peer reset it, which
        # aborts the broker. Clients PING (and tell us their TTL); handover replaces the
        # half-dead connections they leave behind.
        _set_heartbeats(self._socket, heartbeat_ivl_ms, heartbeat_timeout_ms)
        # Disconnects (see transport/connections.py): the monitor must watch before the bind
        self._monitor: zmq.Socket | None = None
        self._connections = ConnectionTable()
        if on_disconnect is not None:
            self._monitor = self._socket.get_monitor_socket(
                zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED
            )
        try:
            self._socket.bind(tcp_address(bind))
        except zmq.ZMQError:
            self._close_monitor()
            self._socket.close(0)
            self._stop_guard()
            raise
        self.address: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._outbox: deque[tuple[bytes, Frames]] = deque()
        self._waker = _Waker()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.max_queued_bytes = max_queued_bytes
        self._lease_lock = threading.Lock()
        self._leases: dict[Lease, None] = {}  # admission order (oldest first)
        self.queued_bytes = 0  # leased, not yet released
        self.peak_queued_bytes = 0
        self.expired_leases = 0
        self.paused_reads = 0  # times reading stopped at the bound
        self.disconnects = 0  # peers reported gone to ``on_disconnect``

    def start(self) -> None:
        self._thread.start()

    def send(self, peer: bytes, frames: Frames) -> None:
        """Queue a message for ``peer`` (thread-safe). Dropped silently if the peer is gone.
        From the I/O thread itself (a handler's answer) no wake-up: it sends its outbox once
        it has read what is ready."""
        self._outbox.append((peer, frames))
        if threading.current_thread() is not self._thread:
            self._waker.wake()

    def reply(self, peer: bytes, correlation_id: int, msg: Any) -> None:
        """Encode ``msg`` (a response) and queue it for ``peer``."""
        self.send(peer, encode_response(msg, correlation_id))

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the I/O thread (after flushing queued replies) and close the socket."""
        self._closing.set()
        self._waker.wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self._close_monitor()
            self._socket.close(0)
            self._waker.close()
            self._stop_guard()

    @property
    def connected_peers(self) -> int:
        """Peers with a live connection that have sent at least one message (tracked only
        with ``on_disconnect``; racy read from other threads, exact on the I/O thread)."""
        return len(self._connections)

    def _close_monitor(self) -> None:
        if self._monitor is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._socket.disable_monitor()
            self._monitor.close(0)
            self._monitor = None

    @property
    def refused_handshakes(self) -> int:
        """CURVE handshakes the ZAP handler refused (0 without CURVE)."""
        return self._guard.refused if self._guard is not None else 0

    def _stop_guard(self) -> None:
        if self._guard is not None:
            self._guard.stop()
            self._guard = None
            self._ctx.term()

    # -- in-flight accounting (any thread) ---------------------------------------------

    def _lease(self, nbytes: int) -> Lease:
        lease = Lease(self, nbytes, time.monotonic())
        with self._lease_lock:
            self._leases[lease] = None
            self.queued_bytes += nbytes
            self.peak_queued_bytes = max(self.peak_queued_bytes, self.queued_bytes)
        return lease

    def _release(self, lease: Lease) -> None:
        with self._lease_lock:
            if lease._released:
                return
            lease._released = True
            self._leases.pop(lease, None)
            was_full = self._full()
            self.queued_bytes -= lease.nbytes
            resume = was_full and not self._full()
        if resume:
            self._waker.wake()

    def _full(self) -> bool:
        """Caller holds the lease lock (or reads a racy value on the I/O thread, which only
        decides whether to poll the socket; a release wakes it)."""
        return 0 <= self.max_queued_bytes <= self.queued_bytes and self.queued_bytes > 0

    def _expire_leases(self, now: float) -> None:
        cutoff = now - LEASE_EXPIRY_S
        with self._lease_lock:
            old = []
            for lease in self._leases:
                if lease.admitted >= cutoff:
                    break
                old.append(lease)
        for lease in old:
            self.expired_leases += 1
            lease.release()

    # -- I/O thread --------------------------------------------------------------------

    def _flush_outbox(self) -> None:
        sock = self._socket
        while self._outbox:
            peer, frames = self._outbox.popleft()
            try:
                sock.send_multipart([peer, *frames], copy=False)
            except zmq.ZMQError:  # peer unroutable or HWM reached: the client will time out
                pass

    def _drain_monitor(self) -> None:
        monitor, table = self._monitor, self._connections
        while _readable(monitor):
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            # frame 0: uint16 event, uint32 value (the descriptor); parsed by hand because
            # pyzmq's parse_monitor_message turns each value into a cached zmq.Event flag
            if len(frames) != 2 or len(frames[0]) != _MONITOR_EVENT.size:
                continue
            event, fd = _MONITOR_EVENT.unpack(frames[0])
            if event == zmq.EVENT_ACCEPTED:
                self._gone(table.accepted(fd))
                if self.limits is not None:
                    self._limit(fd)
            elif event == zmq.EVENT_DISCONNECTED:
                if self.limits is not None:
                    self.limits.closed(fd)
                self._gone(table.disconnected(fd))

    def _limit(self, fd: int) -> None:
        """Refuse the connection just accepted on ``fd`` if it is over a limit: shut down
        (through a duplicate of the descriptor, which libzmq still owns) so that libzmq reads
        the end, closes it and reports it disconnected; nothing of it reaches the handler."""
        try:
            dup = socket.socket(fileno=os.dup(fd))  # closing it closes the duplicate only
        except OSError:
            return  # closed meanwhile: its DISCONNECTED follows
        with dup:
            try:
                ip = dup.getpeername()[0]
            except OSError:
                return
            if not self.limits.accepted(fd, ip):
                with contextlib.suppress(OSError):
                    dup.shutdown(socket.SHUT_RDWR)

    def _seen(self, peer: bytes, fd: int) -> bool:
        if fd < 0:  # descriptor unknown to libzmq: not tracked (idle expiry still applies)
            return True
        if peer[:1] == b"\x00" and self._connections.tied(peer, fd):
            # A routing id ZeroMQ made (a zero byte, then a counter) names one connection and
            # is never presented again by a reconnect: a peer already tied to the connection
            # open on fd spoke on it before, so no event still queued can be about another
            # connection of this peer (a DISCONNECTED of its own releases it after this
            # message, as it would have before it). Saves the monitor's getsockopt on every
            # message of an ordinary client; a peer that chose its own id takes the path below.
            return True
        # A connection's ACCEPTED is queued on the monitor before its first message can be
        # read. So every event still queued now happened before this message's connection was
        # accepted: apply them first, or a closed connection's DISCONNECTED, still queued when
        # a new connection reused its descriptor, would be applied after this message tied its
        # peer to the stale entry, and release the new connection's peer. (The monitor is
        # polled, not read, when it is empty: one getsockopt per message that gets here.)
        self._drain_monitor()
        return self._connections.seen(peer, fd)

    def _gone(self, peers: list[bytes]) -> None:
        for peer in peers:
            self.disconnects += 1
            try:
                self._on_disconnect(peer)
            except Exception:  # noqa: BLE001 - the callback must not kill the I/O thread
                pass

    def _run(self) -> None:
        sock = self._socket
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(self._waker.read_fd, zmq.POLLIN)
        monitor = self._monitor
        if monitor is not None:
            poller.register(monitor, zmq.POLLIN)
        reading = True
        bounded = self.max_queued_bytes >= 0
        while not self._closing.is_set():
            events = dict(poller.poll(1000))
            if self._waker.read_fd in events:
                self._waker.drain()
            self._flush_outbox()
            if monitor is not None and monitor in events:
                self._drain_monitor()
            if bounded:
                self._expire_leases(time.monotonic())
                if reading and self._full():
                    poller.unregister(sock)  # ZeroMQ's pipes fill, then TCP pushes back
                    reading = False
                    self.paused_reads += 1
                    continue
                if not reading:
                    if self._full():
                        continue
                    poller.register(sock, zmq.POLLIN)
                    reading = True
                    events[sock] = zmq.POLLIN  # the edge may have passed while unregistered
            if sock in events:
                # (the monitor's events before a message are applied in _seen, as it needs)
                # Drain what is ready (bounded, so replies keep flowing under load).
                for _ in range(256):
                    if bounded and self._full():
                        break
                    try:
                        ident, parts = _recv_message(sock)
                    except zmq.Again:
                        break
                    if len(parts) < 2:
                        continue
                    peer = parts[0]
                    live = monitor is None or self._seen(peer, _source_fd(ident))
                    lease = self._lease(sum(len(p) for p in parts[1:]))
                    if self._peer_info:
                        lease.user_id = _property(ident, "User-Id")
                        lease.peer_address = _property(ident, "Peer-Address")
                    try:
                        self._handler(peer, parts[1:], lease)
                    except Exception:  # noqa: BLE001 - the handler must not kill the I/O thread
                        lease.release()
                    if not live and not self._connections.connected(peer):
                        # read after its connection closed: answered into the void, released
                        self._gone([peer])
                    if not _readable(sock):
                        break
                self._flush_outbox()
        self._flush_outbox()


def _recv_message(sock: zmq.Socket) -> tuple[zmq.Frame, list[bytes]]:
    """One whole message without blocking (``zmq.Again`` if none is ready): its first frame
    (for its properties) and every frame's bytes. Each frame says whether more follow, so
    no RCVMORE query per frame (as ``recv_multipart``'s)."""
    first = sock.recv(zmq.NOBLOCK, copy=False)
    parts = [first.bytes]
    more = first.more
    while more:
        frame = sock.recv(copy=False)
        parts.append(frame.bytes)
        more = frame.more
    return first, parts


def _source_fd(frame: zmq.Frame) -> int:
    """The descriptor a message was read from (libzmq's SRCFD, deprecated but kept through
    4.3); -1 where this libzmq cannot say."""
    try:
        return frame.get(zmq.SRCFD)
    except (zmq.ZMQError, AttributeError, TypeError):
        return -1


def _property(frame: zmq.Frame, name: str) -> str | None:
    """A message property ("User-Id": the ZAP User-Id, "Peer-Address"); None if absent."""
    try:
        return frame.get(name) or None
    except (zmq.ZMQError, AttributeError, TypeError, UnicodeDecodeError):
        return None


# ------------------------------------------------------------------------------ client side


class _Pending:
    __slots__ = ("future", "address", "api", "timeout_ms", "deadline", "sent")

    def __init__(self, future: Future, address: str, api: str, timeout_ms: int, deadline: float):
        self.future = future
        self.address = address
        self.api = api
        self.timeout_ms = timeout_ms
        self.deadline = deadline
        self.sent = False  # handed to ZeroMQ on a live connection


class _Connection:
    __slots__ = (
        "socket", "monitor", "connected", "was_up", "backlog", "handshaken", "failed_handshakes"
    )

    def __init__(self, socket: zmq.Socket, monitor: zmq.Socket) -> None:
        self.socket = socket
        self.monitor = monitor
        self.connected = False
        self.handshaken = False  # the ZMTP handshake of the current connection succeeded
        self.failed_handshakes = 0  # connections closed mid-handshake in a row
        self.was_up = False  # connected at least once: a down connection now means a dead peer
        # requests not yet taken by ZeroMQ (no connection yet): (cid, frames, item)
        self.backlog: deque[tuple[int, list, Any]] = deque()


class ClientEndpoint:
    """DEALER sockets (one per broker address) on one background I/O thread. Thread-safe.

    ``max_request_bytes`` caps each outbound frame (the broker's MAXMSGSIZE would otherwise
    drop the connection); ``reconnect_ivl_ms`` is ZeroMQ's reconnect interval. Heartbeats
    (``heartbeat_ivl_ms``, ``heartbeat_timeout_ms``; 0 disables) close a connection that went
    silent: its monitor reports it down and the requests sent on it fail at once with
    ``BrokerUnavailableError`` (retriable), as when the broker process dies.
    """

    def __init__(
        self,
        *,
        max_request_bytes: int = MAX_FRAME_BYTES,
        reconnect_ivl_ms: int = 100,
        reconnect_ivl_max_ms: int = 1000,
        name: str = "rillet-client-io",
        identity_prefix: bytes = b"",
        curve: CurveKeys | None = None,
        curve_server_key: bytes | None = None,
        heartbeat_ivl_ms: int = HEARTBEAT_IVL_MS,
        heartbeat_timeout_ms: int = HEARTBEAT_TIMEOUT_MS,
    ) -> None:
        self._ctx = zmq.Context.instance()
        self._curve_options = (
            client_options(curve, curve_server_key) if curve is not None else {}
        )
        self._identity_prefix = identity_prefix
        self._heartbeat = (heartbeat_ivl_ms, heartbeat_timeout_ms)
        self._states: dict[str, bool] = {}  # address -> connected (written by the I/O thread)
        self._max_request_bytes = max_request_bytes
        self._reconnect = (reconnect_ivl_ms, reconnect_ivl_max_ms)
        self._cids = itertools.count(1)
        self._queue: deque[tuple[str, int, list, _Pending | None]] = deque()
        self._waker = _Waker()
        self._closed = False
        self._closed_reason = "endpoint is closed"
        self._lock = threading.Lock()
        # set by the I/O thread while it runs: sends a request it makes itself at once
        self._direct: Callable[[str, int, list, _Pending], bool] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __enter__(self) -> ClientEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, address: str, msg: Any, timeout_ms: int = 30000) -> Future:
        """Send ``msg`` to the broker at ``address`` (``host:port``); a Future of the response.

        A ``ProduceRequest`` with ``acks=0`` gets no response: its Future completes with
        ``None`` once the request is handed to ZeroMQ.
        """
        future: Future = Future()
        cid = next(self._cids)
        frames = encode_request(msg, cid)
        for frame in frames:
            if len(frame) > self._max_request_bytes:
                future.set_exception(RequestTooLargeError(len(frame), self._max_request_bytes))
                return future
        if len(frames[0]) > MAX_HEADER_BYTES:
            future.set_exception(RequestTooLargeError(len(frames[0]), MAX_HEADER_BYTES))
            return future
        expects_reply = not (isinstance(msg, ProduceRequest) and msg.acks == 0)
        pending = None
        if expects_reply:
            deadline = time.monotonic() + timeout_ms / 1000
            pending = _Pending(future, address, msg.API, timeout_ms, deadline)
        own = threading.current_thread() is self._thread
        with self._lock:
            if self._closed:
                future.set_exception(EndpointClosedError(self._closed_reason))
                return future
            # sent at once only behind nothing: a request another thread queued before it
            # (the producer's sender thread, between two I/O rounds) goes first
            direct = self._direct if own and pending is not None and not self._queue else None
            if direct is None:
                self._queue.append((address, cid, frames, pending if expects_reply else future))
        if direct is not None and not direct(address, cid, frames, pending):
            with self._lock:  # not sendable at once: the loop sends it (no wake-up needed)
                self._queue.append((address, cid, frames, pending))
        if not own:
            self._waker.wake()  # (the I/O thread's own: sent above, or on its next loop)
        return future

    def send_raw(self, address: str, frames: Frames) -> None:
        """Send arbitrary frames (tests and tools: garbage, hand-made envelopes). Any reply
        arrives as a response to a cid nobody waits for and is dropped, unless the frames
        carry a cid that ``request`` issued."""
        with self._lock:
            if self._closed:
                raise EndpointClosedError()
            self._queue.append((address, -1, list(frames), None))
        self._waker.wake()

    def request_raw(self, address: str, frames: Frames, timeout_ms: int = 5000) -> Future:
        """Send hand-made frames and wait for a reply to ANY message on that connection whose
        cid is unknown to the endpoint (-1 or not issued): used to test a broker's answers to
        malformed requests. The Future completes with the decoded response (not raised)."""
        future: Future = Future()
        pending = _Pending(future, address, "raw", timeout_ms, time.monotonic() + timeout_ms / 1000)
        with self._lock:
            if self._closed:
                raise EndpointClosedError()
            self._queue.append((address, -2, list(frames), pending))
        self._waker.wake()
        return future

    def is_connected(self, address: str) -> bool | None:
        """True if the connection to ``address`` is up, False if it is down, None if this
        endpoint never sent to it."""
        return self._states.get(address)

    def close(self) -> None:
        """Fail pending requests with ``EndpointClosedError``, close sockets, stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._waker.wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(10)

    # -- I/O thread ---------------------------------------------------------------------

    def _connection(self, address: str, poller: zmq.Poller, conns: dict) -> _Connection:
        """The connection to ``address``, created on first use. Raises ``zmq.ZMQError`` if
        it cannot be created (an address ZeroMQ refuses, the context's socket limit), having
        closed whatever it made."""
        conn = conns.get(address)
        if conn is None:
            sock = self._ctx.socket(zmq.DEALER)
            try:
                monitor = self._configure(sock, address)
            except BaseException:
                sock.close(0)
                raise
            conn = _Connection(sock, monitor)
            conns[address] = conn
            self._states.setdefault(address, False)
            poller.register(sock, zmq.POLLIN)
            poller.register(monitor, zmq.POLLIN)
        return conn

    def _configure(self, sock: zmq.Socket, address: str) -> zmq.Socket:
        """Set the DEALER's options, connect it to ``address``; returns its monitor."""
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, self._reconnect[0])
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, self._reconnect[1])
        sock.setsockopt(zmq.SNDHWM, 100_000)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        # Queue only on live connections: a request that timed out while the broker was
        # down must not be delivered when it comes back (the caller has retried by then).
        # Until the connection is up, requests wait in the backlog (and time out there).
        sock.setsockopt(zmq.IMMEDIATE, 1)
        _set_heartbeats(sock, *self._heartbeat)
        # A connect into a partition would otherwise wait on the kernel's SYN backoff
        # (1, 2, 4, 8... s): after healing, the next SYN could be many seconds away.
        sock.setsockopt(zmq.CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS)
        if self._identity_prefix:
            sock.setsockopt(zmq.IDENTITY, self._identity_prefix + os.urandom(8))
        for option, value in self._curve_options.items():
            sock.setsockopt(option, value)
        monitor = sock.get_monitor_socket(
            zmq.EVENT_CONNECTED
            | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_AUTH
        )
        try:
            sock.connect(tcp_address(address))
        except BaseException:
            with contextlib.suppress(zmq.ZMQError):
                sock.disable_monitor()
            monitor.close(0)
            raise
        return monitor

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._waker.read_fd, zmq.POLLIN)
        conns: dict[str, _Connection] = {}
        by_socket: dict[zmq.Socket, str] = {}
        monitors: dict[zmq.Socket, str] = {}
        pending: dict[int, _Pending] = {}
        raw_waiters: dict[str, deque[_Pending]] = {}
        timeouts: list[tuple[float, int]] = []
        work: list = []
        failure: BaseException | None = None

        def direct(address: str, cid: int, frames: list, item: _Pending) -> bool:
            """A request this thread makes itself (a response's callback: the producer's and
            the replica fetcher's I/O rounds, a consumer's chained fetch) goes to ZeroMQ at
            once when its connection is up with nothing queued before it, not after the
            rest of the callback and a turn of the loop; else False (queue it)."""
            conn = conns.get(address)
            if conn is None or conn.backlog or not conn.connected:
                return False
            pending[cid] = item
            heapq.heappush(timeouts, (item.deadline, cid))
            conn.backlog.append((cid, frames, item))
            self._send_backlog(address, conn, pending)
            return True

        self._direct = direct
        try:
            while True:
                wait_ms = 1000
                if self._queue:  # queued by this thread (a response's callback): no wake-up
                    wait_ms = 0
                elif any(c.backlog for c in conns.values()):
                    wait_ms = 5
                elif timeouts:
                    wait_ms = max(0, min(1000, int((timeouts[0][0] - time.monotonic()) * 1000) + 1))
                events = dict(poller.poll(wait_ms))
                if self._waker.read_fd in events:
                    self._waker.drain()
                with self._lock:
                    closed = self._closed
                    work = list(self._queue)
                    self._queue.clear()
                if closed:
                    for _, _, _, item in work:
                        if isinstance(item, _Pending):
                            pending[id(item)] = item
                    break
                for address, cid, frames, item in work:
                    try:
                        conn = self._connection(address, poller, conns)
                    except zmq.ZMQError as e:  # fail this request, not every later one
                        _fail_item(item, BrokerUnavailableError(
                            address, getattr(item, "api", "Produce"), 0, reason=str(e)))
                        continue
                    by_socket[conn.socket] = address
                    monitors[conn.monitor] = address
                    if isinstance(item, _Pending):
                        if cid == -2:
                            raw_waiters.setdefault(address, deque()).append(item)
                            key = -id(item)
                        else:
                            key = cid
                        pending[key] = item
                        heapq.heappush(timeouts, (item.deadline, key))
                    conn.backlog.append((cid, frames, item))
                for address, conn in conns.items():
                    self._send_backlog(address, conn, pending)
                for sock, address in list(by_socket.items()):
                    if sock not in events:
                        continue
                    for _ in range(1024):
                        try:
                            _first, frames = _recv_message(sock)
                        except zmq.Again:
                            break
                        self._deliver(address, frames, pending, raw_waiters)
                        if not _readable(sock):
                            break
                for mon, address in monitors.items():
                    if mon in events:
                        while True:
                            try:
                                event = parse_monitor_message(mon.recv_multipart(zmq.NOBLOCK))
                            except zmq.Again:
                                break
                            kind = event["event"]
                            conn = conns[address]
                            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                                conn.handshaken = conn.was_up = True
                                conn.failed_handshakes = 0
                                continue
                            refusal = self._refusal(conn, kind)
                            if refusal is not None:
                                conn.handshaken = conn.connected = False
                                self._states[address] = False
                                self._refuse(address, conn, refusal, pending, raw_waiters)
                                continue
                            up = kind == zmq.EVENT_CONNECTED
                            if kind not in (zmq.EVENT_CONNECTED, zmq.EVENT_DISCONNECTED):
                                continue
                            if not up:
                                conn.handshaken = False
                            conns[address].connected = up
                            self._states[address] = up
                            if not up:
                                _fail_lost(address, pending, raw_waiters)
                now = time.monotonic()
                while timeouts and timeouts[0][0] <= now:
                    _, key = heapq.heappop(timeouts)
                    item = pending.pop(key, None)
                    if item is None:
                        continue
                    conn = conns.get(item.address)
                    if conn is not None:
                        _drop_from_backlog(conn, item)
                    if conn is not None and conn.connected:
                        err: Exception = RequestTimedOutError(
                            item.address, item.api, item.timeout_ms
                        )
                    else:
                        err = BrokerUnavailableError(item.address, item.api, item.timeout_ms)
                    waiters = raw_waiters.get(item.address)
                    if waiters and item in waiters:
                        waiters.remove(item)
                    _fail(item.future, err)
        except BaseException as e:
            failure = e
            raise  # reported by threading.excepthook
        finally:
            # Whatever stopped the thread (close() or a bug), nothing may be left waiting: a
            # request nobody will ever answer would hang its caller for good.
            with self._lock:
                self._direct = None
                self._closed = True
                if failure is not None:
                    self._closed_reason = f"its I/O thread stopped on {failure!r}"
                work += self._queue
                self._queue.clear()
            error = EndpointClosedError(self._closed_reason)
            for item in pending.values():
                _fail(item.future, error)
            for _, _, _, item in work:
                _fail_item(item, error)
            for conn in conns.values():
                for _, _, item in conn.backlog:
                    _fail_item(item, error)
                with contextlib.suppress(Exception):
                    conn.socket.disable_monitor()
                conn.monitor.close(0)
                conn.socket.close(0)
            self._waker.close()

    def _refusal(self, conn: _Connection, kind: int) -> str | None:
        """Why the broker refused this connection's handshake (docs/security.md), or None
        if ``kind`` (a monitor event) is no refusal."""
        curve = bool(self._curve_options)
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return "the broker does not know this client's key (curve.client.keyfile)"
        if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if curve:
                return "the broker does not speak CURVE on this listener (security.protocol)"
            return "the broker requires CURVE (set security.protocol=CURVE and its keys)"
        if kind == zmq.EVENT_DISCONNECTED and conn.connected and not conn.handshaken:
            # A CURVE server that cannot open our HELLO (it is not the key we named) just
            # closes, as does one a plaintext client greets. Twice in a row (reconnects are
            # 100 ms apart), so a broker dying mid-handshake is not mistaken for a refusal.
            conn.failed_handshakes += 1
            if conn.failed_handshakes < 2:
                return None
            if curve:
                return (
                    "the broker closed the connection during the CURVE handshake: "
                    "curve.server.publickey is not this broker's key"
                )
            return "the broker closed the connection during the handshake: it requires CURVE"
        return None

    def _refuse(
        self, address: str, conn: _Connection, reason: str, pending: dict, raw_waiters: dict
    ) -> None:
        """Fail everything waiting on ``address`` with ``AuthenticationFailedError``."""
        error = AuthenticationFailedError(address, reason)
        while conn.backlog:
            cid, _frames, item = conn.backlog.popleft()
            if isinstance(item, _Pending):
                pending.pop(cid if cid != -2 else -id(item), None)
            _fail_item(item, error)
        for key, item in list(pending.items()):
            if item.address == address:
                del pending[key]
                waiters = raw_waiters.get(address)
                if waiters and item in waiters:
                    waiters.remove(item)
                _fail(item.future, error)

    def _send_backlog(self, address: str, conn: _Connection, pending: dict) -> None:
        while conn.backlog:
            cid, frames, item = conn.backlog[0]
            if isinstance(item, _Pending) and item.future.done():
                conn.backlog.popleft()
                continue
            try:
                conn.socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                if conn.was_up and not conn.connected:
                    self._fail_backlog(address, conn, pending)  # fail fast: the broker is down
                return  # no live connection yet: retry on the next loop
            except zmq.ZMQError as e:
                conn.backlog.popleft()
                if isinstance(item, _Pending):
                    pending.pop(cid if cid != -2 else -id(item), None)
                    _fail(item.future, BrokerUnavailableError(address, item.api, 0))
                elif isinstance(item, Future):
                    _fail(item, e)
                continue
            except Exception as e:  # a bug in one request fails that request (its caller
                conn.backlog.popleft()  # sees why), not the I/O thread and every request after
                if isinstance(item, _Pending):
                    pending.pop(cid if cid != -2 else -id(item), None)
                _fail_item(item, e)
                continue
            conn.backlog.popleft()
            if isinstance(item, Future):  # acks=0 produce: done once sent
                _succeed(item, None)
            elif isinstance(item, _Pending):
                item.sent = True

    def _fail_backlog(self, address: str, conn: _Connection, pending: dict) -> None:
        while conn.backlog:
            cid, _frames, item = conn.backlog.popleft()
            if isinstance(item, _Pending):
                pending.pop(cid if cid != -2 else -id(item), None)
                _fail(item.future, BrokerUnavailableError(address, item.api, 0, disconnected=True))
            elif isinstance(item, Future):
                _fail(item, BrokerUnavailableError(address, "Produce", 0, disconnected=True))

    def _deliver(
        self,
        address: str,
        frames: list[bytes],
        pending: dict[int, _Pending],
        raw_waiters: dict[str, deque[_Pending]],
    ) -> None:
        try:
            cid, msg = decode_response(frames)
        except ProtocolError as e:
            item = pending.pop(getattr(e, "correlation_id", -1), None)
            if item is not None:
                _fail(item.future, e)
            return
        item = pending.pop(cid, None)
        if item is None:
            waiters = raw_waiters.get(address)
            if waiters:
                raw = waiters.popleft()
                if pending.pop(-id(raw), None) is not None:
                    _succeed(raw.future, msg)
            return
        if isinstance(msg, ErrorResponse):
            _fail(item.future, ProtocolError(msg.error_code, msg.error_message, remote=True))
        else:
            _succeed(item.future, msg)


def _fail_lost(address: str, pending: dict, raw_waiters: dict) -> None:
    """The connection to ``address`` went down: requests sent on it will never be answered
    (with IMMEDIATE, ZeroMQ drops the pipe): fail them now rather than at their timeout."""
    for key, item in list(pending.items()):
        if item.address == address and item.sent:
            del pending[key]
            waiters = raw_waiters.get(address)
            if waiters and item in waiters:
                waiters.remove(item)
            _fail(
                item.future,
                BrokerUnavailableError(address, item.api, item.timeout_ms, connection_lost=True),
            )


def _drop_from_backlog(conn: _Connection, item: Any) -> None:
    for entry in conn.backlog:
        if entry[2] is item:
            conn.backlog.remove(entry)
            return


def _succeed(future: Future, value: Any) -> None:
    if not future.done() and future.set_running_or_notify_cancel():
        future.set_result(value)


def _fail(future: Future, error: BaseException) -> None:
    # done(): already answered, or cancelled by its caller (set_running_or_notify_cancel
    # raises on a finished future)
    if not future.done() and future.set_running_or_notify_cancel():
        future.set_exception(error)


def _fail_item(item: Any, error: BaseException) -> None:
    """Fail a queued request's future: a ``_Pending``'s, or an acks=0 produce's own."""
    if isinstance(item, _Pending):
        _fail(item.future, error)
    elif isinstance(item, Future):
        _fail(item, error)
