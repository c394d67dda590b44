"""Which TCP connection each ZeroMQ peer last spoke on, so a server learns when a peer is gone.

ZeroMQ's ROUTER socket never says that a peer disconnected. Two things together do:

* the socket monitor reports ``ACCEPTED`` and ``DISCONNECTED`` with the connection's file
  descriptor (a connection killed by ``kill -9``, reset, cut by the peer's heartbeat TTL, or
  dropped by ZeroMQ for an oversized frame all end in ``DISCONNECTED``);
* every inbound message carries the descriptor it was read from (``SRCFD``).

``ConnectionTable`` joins them: each accepted descriptor gets a fresh connection serial (a
descriptor number is reused by the kernel, a serial never is), each message ties its peer to
the serial of the connection it came on, and a ``DISCONNECTED`` releases the peers whose
*latest* message came on that connection. So a peer that reconnected under the same identity
(``ROUTER_HANDOVER``) and spoke on its new connection is not released when the old one dies;
one that reconnected and has not spoken yet is released and simply starts afresh with its
next message.

Order matters: the endpoint applies every queued monitor event before it ties a message to
its descriptor. Otherwise a closed connection's ``DISCONNECTED``, still queued when the kernel
gave its descriptor to a new connection, would be applied after the new connection's first
message was tied to the stale entry, and release the new connection's peer. A peer with a
routing id ZeroMQ made (a zero byte, then a counter: one connection's, never presented again
by a reconnect) that is already tied to the connection open on the descriptor skips that:
nothing queued can concern another connection of it (``tied``). A client that picks an id
starting with a zero byte itself (ZeroMQ reserves them) and reconnects under it may be
released once after its first message on the new connection; it starts afresh with its next.

Pure bookkeeping, no zmq, no clock: ``transport/endpoint.py`` owns one per server socket and
calls it on its I/O thread only (not thread-safe).
"""

from __future__ import annotations

import itertools


class ConnectionTable:
    """Peers of one server socket and the connections they last spoke on. One thread."""

    __slots__ = ("_serials", "_by_fd", "_peers_of", "_conn_of")

    def __init__(self) -> None:
        self._serials = itertools.count(1)
        self._by_fd: dict[int, int] = {}  # fd -> serial of the connection open on it
        self._peers_of: dict[int, set[bytes]] = {}  # serial -> peers that spoke on it last
        self._conn_of: dict[bytes, int] = {}  # peer -> serial of the connection it spoke on last

    def accepted(self, fd: int) -> list[bytes]:
        """A connection was accepted on ``fd``. Returns the peers released because an earlier
        connection on the same descriptor is evidently gone (its close was not reported)."""
        gone = self._close(fd)
        self._by_fd[fd] = next(self._serials)
        return gone

    def disconnected(self, fd: int) -> list[bytes]:
        """The connection on ``fd`` closed: the peers whose latest connection it was."""
        return self._close(fd)

    def seen(self, peer: bytes, fd: int) -> bool:
        """A message of ``peer`` was read from ``fd``. False if no open connection is known on
        ``fd`` (it closed before the message was read): the caller releases the peer once the
        message is handled, unless ``connected(peer)`` says it has a live connection."""
        serial = self._by_fd.get(fd)
        if serial is None:
            return False
        old = self._conn_of.get(peer)
        if old != serial:
            if old is not None:
                peers = self._peers_of.get(old)
                if peers is not None:
                    peers.discard(peer)
                    if not peers:
                        del self._peers_of[old]
            self._conn_of[peer] = serial
            self._peers_of.setdefault(serial, set()).add(peer)
        return True

    def connected(self, peer: bytes) -> bool:
        return peer in self._conn_of

    def tied(self, peer: bytes, fd: int) -> bool:
        """``peer``'s latest message came on the connection this table has open on ``fd``."""
        serial = self._conn_of.get(peer)
        return serial is not None and self._by_fd.get(fd) == serial

    @property
    def open_connections(self) -> int:
        return len(self._by_fd)

    def __len__(self) -> int:
        """Peers with a live connection."""
        return len(self._conn_of)

    def _close(self, fd: int) -> list[bytes]:
        serial = self._by_fd.pop(fd, None)
        if serial is None:
            return []
        gone = []
        for peer in self._peers_of.pop(serial, ()):
            if self._conn_of.get(peer) == serial:
                del self._conn_of[peer]
                gone.append(peer)
        return gone
