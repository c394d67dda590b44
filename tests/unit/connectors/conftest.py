from __future__ import annotations

import time

import pytest
from rillet.connectors.config import parse_worker_config
from rillet.connectors.herder import Worker

from .fakes import FakeCluster


def wait_until(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def cluster():
    return FakeCluster()


@pytest.fixture
def worker_config():
    return parse_worker_config({"bootstrap.servers": "fake:1", "rest.port": "0",
                                "offset.flush.interval.ms": "50"})


@pytest.fixture
def worker(cluster, worker_config):
    w = Worker(worker_config, cluster.clients(), worker_id="test")
    try:
        yield w
    finally:
        w.stop()
