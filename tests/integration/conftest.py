"""Fixtures that run real broker processes: ``cluster`` and ``cluster_factory``.

Every cluster is stopped at teardown, even when the test fails (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rillet.launcher import LocalCluster

# Fast schedules so retention/compaction are observable within a test.
TEST_BROKER_CONFIGS = {"log.retention.check.interval.ms": "500"}


@pytest.fixture
def cluster_factory(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    """``cluster_factory(brokers=1, configs=None, start=True, data_dir=None)`` -> a
    LocalCluster in tmp_path (started unless ``start=False``); all stopped at teardown."""
    made: list[LocalCluster] = []

    def make(
        brokers: int = 1,
        configs: dict[str, str] | None = None,
        *,
        start: bool = True,
        data_dir: Path | None = None,
    ) -> LocalCluster:
        directory = data_dir or tmp_path / f"cluster-{len(made)}"
        cluster = LocalCluster(directory, brokers, {**TEST_BROKER_CONFIGS, **(configs or {})})
        made.append(cluster)
        if start:
            cluster.start(timeout_s=30)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop(timeout_s=10)


@pytest.fixture
def cluster(cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    """A started one-broker LocalCluster (``cluster.bootstrap_servers``)."""
    return cluster_factory()
