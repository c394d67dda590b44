"""Connection limits of a server socket: ``max.connections`` and ``max.connections.per.ip``
(Kafka's names; docs/runtime.md, "Connection limits").

Pure bookkeeping, no zmq, no clock: the server endpoint (transport/endpoint.py) calls
``accepted`` for each connection its socket monitor reports accepted (with the connection's
descriptor and the peer's IP address) and ``closed`` for each one reported disconnected, on
its I/O thread only. A connection over a limit is refused: the endpoint shuts it down at
once, before it can carry a request (ZeroMQ then reports it disconnected, which ends here
too). Kafka blocks the accept for ``max.connections`` instead and closes the newest for
``max.connections.per.ip``; ZeroMQ accepts on its own thread, so both refuse here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

UNLIMITED = 2**31 - 1  # Kafka's default for both


class ConnectionLimits:
    """Open connections by descriptor and by IP. One thread."""

    __slots__ = ("max_connections", "max_per_ip", "_ip_of", "_per_ip", "refused_total",
                 "refused_per_ip", "on_refuse")

    def __init__(self, max_connections: int = UNLIMITED, max_per_ip: int = UNLIMITED) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self._ip_of: dict[int, str] = {}
        self._per_ip: Counter[str] = Counter()
        self.refused_total = 0  # over max.connections
        self.refused_per_ip = 0  # over max.connections.per.ip
        # told the counter's name of each refusal (the broker's BrokerCounters)
        self.on_refuse: Callable[[str], None] | None = None

    @property
    def limited(self) -> bool:
        return self.max_connections < UNLIMITED or self.max_per_ip < UNLIMITED

    def open_count(self, ip: str | None = None) -> int:
        return len(self._ip_of) if ip is None else self._per_ip[ip]

    def accepted(self, fd: int, ip: str) -> bool:
        """A connection from ``ip`` was accepted on ``fd``: True if it may stay, False if the
        caller must close it (then it is not counted)."""
        self.closed(fd)  # a descriptor reused before its close was reported
        if len(self._ip_of) >= self.max_connections:
            self.refused_total += 1
            return self._refused("connections_refused_max_connections")
        if self._per_ip[ip] >= self.max_per_ip:
            self.refused_per_ip += 1
            return self._refused("connections_refused_per_ip")
        self._ip_of[fd] = ip
        self._per_ip[ip] += 1
        return True

    def _refused(self, counter: str) -> bool:
        if self.on_refuse is not None:
            self.on_refuse(counter)
        return False

    def closed(self, fd: int) -> None:
        ip = self._ip_of.pop(fd, None)
        if ip is not None:
            self._per_ip[ip] -= 1
            if not self._per_ip[ip]:
                del self._per_ip[ip]
