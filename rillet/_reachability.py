"""Fail fast when no bootstrap server can be reached at all (issue #21).

A ZeroMQ connect never fails: it retries in the background, so a typo'd port or host name
used to cost a whole request timeout (15 s in the CLI, 60 s in ``Producer.send``) before a
vague "not reachable". Before a client has ever heard from the cluster (no metadata yet),
``unreachable_reason`` tries a plain TCP connect to each bootstrap address (loopback or LAN:
milliseconds) and names the reason when *every* one fails for a reason that waiting will not
fix soon: the host name does not resolve, or the connection is refused (nothing listens).
A host that merely does not answer (a timeout, a firewall) is not judged: the normal
timeouts apply. Once the client has had metadata, a broker that goes away is a restart to
ride out (metadata refresh and retry, as Kafka's clients do), never a fast failure.
"""

from __future__ import annotations

import socket

PROBE_TIMEOUT_S = 1.0


def _split(address: str) -> tuple[str, int] | None:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe(address: str) -> str | None:
    """None if a TCP connection to ``address`` succeeds (or cannot be judged), else why not:
    ``"cannot resolve host 'x'"`` or ``"connection refused by host:port"``."""
    split = _split(address)
    if split is None:
        return None
    host, port = split
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return f"cannot resolve host {host!r} ({e.strerror})"
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(PROBE_TIMEOUT_S)
                sock.connect(sockaddr)
            return None
        except ConnectionRefusedError:
            continue
        except OSError:
            return None  # a timeout or an unreachable network: not judged here
    return f"connection refused by {address} (is a broker running there?)"


def unreachable_reason(addresses: list[str]) -> str | None:
    """The reasons, joined, if every address fails fast; None if any may be reachable."""
    reasons = []
    for address in addresses:
        reason = probe(address)
        if reason is None:
            return None
        reasons.append(reason)
    return "; ".join(reasons) if reasons else None
