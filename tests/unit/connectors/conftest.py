from __future__ import annotations

import pytest
from rillet.connectors.config import parse_worker_config
from rillet.connectors.herder import Worker

from tests.support import wait_until  # noqa: F401 - the connector tests import it from here

from .fakes import FakeCluster


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
