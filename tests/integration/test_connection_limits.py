"""``max.connections`` and ``max.connections.per.ip`` on a real broker process, with real
TCP sockets (docs/runtime.md, "Connection limits"): a connection over a limit is closed at
once, the ones within it stay open, other addresses keep their share, and a closed
connection frees its place for a normal client."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from conftest import TEST_BROKER_CONFIGS, Wire
from prometheus_client.parser import text_string_to_metric_families
from rillet.transport import protocol as P
from rillet.transport.errors import BrokerUnavailableError

from rillet import Admin
from rillet.launcher import LocalCluster
from tests.support import wait_until

pytestmark = pytest.mark.timeout(120)


def _connect(address: str, source_ip: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    s = socket.socket()
    s.bind((source_ip, 0))
    s.connect((host, int(port)))
    return s


def _closed_by_peer(s: socket.socket, within_s: float) -> bool:
    """True if the broker closes ``s`` within ``within_s`` (whatever it sent first: libzmq
    may greet before the refusal)."""
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            if not s.recv(4096):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def _client_connections(cluster) -> float:
    """The broker's open client-listener connections, from its /metrics."""
    with urllib.request.urlopen(cluster.metrics_url(1), timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "rillet_connection_count" and sample.labels.get(
                    "listener") == "CLIENT":
                return sample.value
    return -1.0


def test_connections_over_the_limits_are_closed_and_the_others_stay(tmp_path) -> None:
    c = LocalCluster(tmp_path / "c", 1, {**TEST_BROKER_CONFIGS, "max.connections": "3",
                                         "max.connections.per.ip": "2"})
    opened: list[socket.socket] = []
    try:
        c.start(timeout_s=60)
        address = c.bootstrap_servers.split(",")[0]
        # the launcher's readiness probe came from 127.0.0.1 too: its connection must be
        # gone before the count starts (it made a or b the one over the limit in CI)
        deadline = time.monotonic() + 30
        while _client_connections(c) != 0:
            assert time.monotonic() < deadline, "the readiness probe's connection stays open"
            time.sleep(0.1)
        a, b = _connect(address, "127.0.0.1"), _connect(address, "127.0.0.1")
        opened += [a, b]
        third = _connect(address, "127.0.0.1")  # over max.connections.per.ip
        opened.append(third)
        assert _closed_by_peer(third, 15)
        other = _connect(address, "127.0.0.2")  # another address keeps its share
        opened.append(other)
        fourth = _connect(address, "127.0.0.3")  # over max.connections (3 open)
        opened.append(fourth)
        assert _closed_by_peer(fourth, 15)
        for s in (a, b, other):
            assert not _closed_by_peer(s, 0.5)  # still open
        # a place freed: a normal client from 127.0.0.1 gets in (its zmq reconnects)
        a.close()
        with Admin({"bootstrap.servers": address, "request.timeout.ms": 30000}) as admin:
            assert admin.list_topics() is not None

        def read_counters():  # the admin's slot may not be freed yet: refused, try again
            w = Wire(address)
            try:
                return {c.name: c.value for c in w.call(P.BrokerCountersRequest()).counters}
            except BrokerUnavailableError:
                return None
            finally:
                w.close()

        counters = wait_until(read_counters, 30, "the broker's counters over a free slot")
        assert counters["connections_refused_per_ip"] >= 1
        assert counters["connections_refused_max_connections"] >= 1
    finally:
        for s in opened:
            s.close()
        c.stop(timeout_s=10)
