"""What the mirror tests share: an mm2.properties writer, the `rillet mirror start` process
(always stopped at teardown), and small produce/count helpers over the public clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rillet import Admin, Producer
from rillet.errors import NotLeaderOrFollowerError
from rillet.launcher import LocalCluster
from rillet.records import NewTopic, TopicPartition
from tests.integration.conftest import TEST_BROKER_CONFIGS

PARTITIONS = 3


def _props(tmp_path: Path, a: str, b: str, **extra: str) -> Path:
    lines = {"clusters": "A, B", "A.bootstrap.servers": a, "B.bootstrap.servers": b,
             "A->B.enabled": "true", "A->B.topics": "orders.*",
             "refresh.topics.interval.seconds": "1", "emit.checkpoints.interval.seconds": "1",
             **extra}
    path = tmp_path / f"mm2-{len(list(tmp_path.glob('mm2-*')))}.properties"
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
    return path


class Mirror:
    """One `rillet mirror start` process; always stopped at teardown."""

    def __init__(self, props: Path, log: Path) -> None:
        self.props, self.log, self.proc = props, log, None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rillet.cli.main", "mirror", "start", str(self.props)],
            stdout=out, stderr=out, env={**os.environ, "RILLET_DEBUG": "1"})

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture(scope="module", name="pair")
def pair_fixture(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[LocalCluster, LocalCluster]]:
    """Two started one-broker clusters (A, B) shared by a module's tests, each of which uses
    its own topics; stopped at the module's end. Import as ``pair_fixture``."""
    root = tmp_path_factory.mktemp("mirror-pair")
    a = LocalCluster(root / "a", 1, dict(TEST_BROKER_CONFIGS))
    b = LocalCluster(root / "b", 1, dict(TEST_BROKER_CONFIGS))
    try:
        a.start(timeout_s=60)
        b.start(timeout_s=60)
        yield a, b
    finally:
        a.stop(timeout_s=10)
        b.stop(timeout_s=10)


@pytest.fixture(name="mirrors")
def mirrors_fixture(tmp_path: Path):
    """``mirrors(props) -> Mirror``: started now, stopped at teardown (import this fixture
    into a test module as ``mirrors_fixture``; tests ask for ``mirrors``)."""
    made: list[Mirror] = []

    def make(props: Path) -> Mirror:
        m = Mirror(props, tmp_path / f"mirror-{len(made)}.log")
        made.append(m)
        m.start()
        return m

    yield make
    for m in made:
        m.stop()


def _produce(bootstrap: str, topic: str, n: int, start: int = 0) -> None:
    with Producer({"bootstrap.servers": bootstrap, "acks": "all"}) as p:
        for i in range(start, start + n):
            p.send(topic, f"v{i}".encode(), f"k{i % 50}".encode(),
                   headers=[("seq", str(i).encode())], timestamp_ms=1_700_000_000_000 + i)
        p.flush()


def _count(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (the sum of its log end offsets); 0 while it does not exist or a
    partition has no leader yet (the mirror has just created it)."""
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        if topic not in admin.list_topics():
            return 0
        parts = admin.describe_topics([topic])[topic].partitions
        try:
            ends = admin.list_offsets([TopicPartition(topic, p.partition) for p in parts])
        except NotLeaderOrFollowerError:
            return 0
    return sum(ends.values())


def _create(bootstrap: str, topic: str, partitions: int = PARTITIONS, **configs: str) -> None:
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(topic, partitions, configs=configs)])


