"""Fast failure and patient retry (issue #21): a refused connection or an unresolvable host is
reported at once by the CLI, Producer, Consumer and Admin; a client created right after a
partition leader died refreshes its metadata and retries instead of giving up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from rillet import Admin, Consumer, Producer
from rillet.errors import NoBrokersAvailableError
from tests.support import FAST_CLUSTER_CONFIGS

pytestmark = [pytest.mark.integration]


def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"  # closed on exit: connections refused


@pytest.mark.parametrize("where, said", [
    ("closed", "connection refused"), ("nosuchhost.invalid:9092", "cannot resolve"),
])
def test_unreachable_bootstrap_fails_at_once(where, said) -> None:
    address = closed_port() if where == "closed" else where
    attempts = {
        "producer": lambda: Producer({"bootstrap.servers": address}).send("t", b"v").get(30),
        "consumer": lambda: Consumer({"bootstrap.servers": address,
                                      "group.id": "g"}).subscribe(["t"]),
        "admin": lambda: Admin({"bootstrap.servers": address}).list_topics(),
    }
    for who, attempt in attempts.items():
        started = time.monotonic()
        with pytest.raises(NoBrokersAvailableError, match=said):
            attempt()
        assert time.monotonic() - started < 5, f"{who} waited before failing"
    env = {k: v for k, v in os.environ.items() if k != "RILLET_BROKERS"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "rillet.cli.main", "topic", "list", "-b",
                           address], env=env, capture_output=True, timeout=60)
    assert proc.returncode == 1 and said in proc.stderr.decode(), proc.stderr.decode()
    assert time.monotonic() - started < 10


@pytest.mark.slow  # ~25 s, and it passes on the code before the fast-failure change too
@pytest.mark.timeout(150)
def test_a_client_created_right_after_the_leader_died_retries(cluster_factory) -> None:
    # the dead leader stays in the metadata until its session (6 s) expires
    cluster = cluster_factory(3, {**FAST_CLUSTER_CONFIGS, "broker.session.timeout.ms": "6000"})
    admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
    from rillet.admin import NewTopic

    admin.create_topics([NewTopic("after-death", 1, 3)])
    deadline = time.monotonic() + 30
    while (leader := admin.describe_topics(["after-death"])["after-death"].partitions[0].leader) < 0:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    admin.close()
    cluster.kill(leader)
    producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all"})
    try:
        started = time.monotonic()
        meta = producer.send("after-death", b"survives").get(120)
        assert meta.offset >= 0
        print(f"delivered {time.monotonic() - started:.1f} s after the leader died")
    finally:
        producer.close()
