"""The KAFKA listener's connection security below the Kafka protocol (docs/security.md,
"SASL_SSL" and "Handshake timeout"): TLS over a connection's bytes and the deadline of its
handshake. Used by actors/kafka_listener.py from its loop thread only.

* ``TlsChannel``: Python's ``ssl`` over memory buffers (``SSLContext.wrap_bio``), so the
  listener's one selector thread keeps its non-blocking sockets: raw bytes from the socket
  go in with ``receive`` (the TLS handshake advances, the plaintext comes out), plaintext
  answers go in with ``seal`` and the TLS records to send come out. A peer that does not
  speak TLS (a PLAINTEXT Kafka client on an SSL port) raises ``ssl.SSLError`` at its
  first bytes; the listener closes that connection.
* ``HandshakeDeadlines``: ``handshake.timeout.ms`` (rillet's key; Kafka has none by this
  name). A connection of an SSL or SASL listener that has not finished its handshake (TLS,
  then SASL authentication) that long after it was accepted is closed. One deadline per
  connection, in accept order (the timeout is the same for all), so the due ones are at
  the front: O(1) per connection.
* ``server_context(configs)``: the listener's ``ssl.SSLContext`` from Kafka's key names, PEM
  only (``ssl.keystore.type=PEM``, ``ssl.keystore.location`` a PEM file with the private key
  and the certificate chain, ``ssl.key.password`` if the key is encrypted); TLS 1.2+.
"""

from __future__ import annotations

import collections
import ssl
from collections.abc import Mapping
from typing import Any

_READ = 256 * 1024


class TlsError(Exception):
    """The TLS configuration cannot be used (the broker refuses to start)."""


def server_context(configs: Mapping[str, str]) -> ssl.SSLContext:
    """The KAFKA listener's TLS context; TlsError naming what is wrong."""
    kind = configs.get("ssl.keystore.type", "JKS").upper()
    location = configs.get("ssl.keystore.location", "")
    if kind != "PEM":
        raise TlsError(f"ssl.keystore.type={kind}: rillet reads PEM key stores only (set "
                       "ssl.keystore.type=PEM and ssl.keystore.location to a PEM file with "
                       "the private key and the certificate chain)")
    if not location:
        raise TlsError("an SSL/SASL_SSL KAFKA listener needs ssl.keystore.location (a PEM file "
                       "with the private key and the certificate chain)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(location, password=configs.get("ssl.key.password") or None)
    except (OSError, ssl.SSLError) as e:
        raise TlsError(f"ssl.keystore.location={location}: {e}") from None
    return context


class TlsChannel:
    """One connection's TLS (server side) over memory buffers."""

    __slots__ = ("_in", "_out", "_tls", "handshaken", "wire")

    def __init__(self, context: ssl.SSLContext) -> None:
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._in, self._out, server_side=True)
        self.handshaken = False
        self.wire = bytearray()  # TLS records not yet sent

    def receive(self, data: bytes) -> bytes:
        """The plaintext that ``data`` (raw bytes from the peer) completes; ssl.SSLError
        when the peer does not speak TLS or breaks it."""
        self._in.write(data)
        plain = bytearray()
        try:
            if not self.handshaken:
                self._tls.do_handshake()
                self.handshaken = True
            while True:
                chunk = self._tls.read(_READ)
                if not chunk:
                    break
                plain += chunk
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        finally:
            self.wire += self._out.read()  # handshake records, alerts
        return bytes(plain)

    def seal(self, plain: bytearray) -> bytearray:
        """Move ``plain`` (emptied) into TLS records; the bytes to send (``wire``)."""
        if plain and self.handshaken:
            self._tls.write(bytes(plain))
            plain.clear()
            self.wire += self._out.read()
        return self.wire


class HandshakeDeadlines:
    """Connections that must finish their handshake by a deadline (see the module
    docstring). ``done(conn)`` says whether a connection has finished (or is gone)."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout = timeout_ms / 1000
        self._queue: collections.deque[tuple[float, Any]] = collections.deque()
        self.expired = 0  # connections closed at their deadline (observable in tests)

    def add(self, conn: Any, now: float) -> None:
        self._queue.append((now + self.timeout, conn))

    def wait(self, now: float, longest: float) -> float:
        """How long the loop may sleep before the next deadline (at most ``longest``)."""
        if not self._queue:
            return longest
        return max(0.0, min(longest, self._queue[0][0] - now))

    def due(self, now: float, done) -> list[Any]:
        """The connections whose deadline has passed unfinished (removed from the queue);
        finished ones are dropped from the front as they come."""
        out = []
        queue = self._queue
        while queue and (queue[0][0] <= now or done(queue[0][1])):
            deadline, conn = queue.popleft()
            if not done(conn):
                out.append(conn)
        self.expired += len(out)
        return out
