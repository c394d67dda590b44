"""Fixtures that run real broker processes: ``cluster`` and ``cluster_factory``.

Every cluster is stopped at teardown, even when the test fails (SIGTERM, then SIGKILL).
A failed test's report carries the tail of each of its brokers' logs (the warnings and
errors, then the last lines), so a failure seen only on CI can be read from CI's output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rillet.launcher import LocalCluster
from tests import support

LOG_TAIL_LINES = 12
LOG_PROBLEM_LINES = 12


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    tmp_path = getattr(item, "funcargs", {}).get("tmp_path")
    if tmp_path is None or "cluster_factory" not in item.fixturenames:
        return
    for log in sorted(Path(tmp_path).glob("cluster-*/broker-*/broker.log")):
        report.sections.append((f"tail of {log.relative_to(tmp_path)}", _log_tail(log)))


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(unreadable: {e})"
    problems = [line for line in lines[:-LOG_TAIL_LINES]
                if " WARNING " in line or " ERROR " in line][-LOG_PROBLEM_LINES:]
    return "\n".join([*problems, "...", *lines[-LOG_TAIL_LINES:]] if problems
                     else lines[-LOG_TAIL_LINES:])


# Fast schedules so retention/compaction are observable within a test.
TEST_BROKER_CONFIGS = {"log.retention.check.interval.ms": "500"}
# Fast failure detection for multi-broker tests: tests/support.py
FAST_CLUSTER_CONFIGS = support.FAST_CLUSTER_CONFIGS


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


@pytest.fixture(scope="module")
def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One started one-broker LocalCluster shared by the tests of a module, to save a broker
    start-up per test. Only for tests that never stop, kill or reconfigure the broker and
    use topic names no other test of the module uses; a module opts in by overriding
    ``cluster`` with ``shared_cluster`` (below)."""
    directory = tmp_path_factory.mktemp("module-cluster")
    cluster = LocalCluster(directory, 1, dict(TEST_BROKER_CONFIGS))
    try:
        cluster.start(timeout_s=30)
        yield cluster
    finally:
        cluster.stop(timeout_s=10)


def kafka_bootstrap(cluster: LocalCluster, timeout_s: float = 60.0) -> str:
    """Every broker's advertised KAFKA address (the broker writes its ``kafka-listener``
    file once the listener is bound), comma-separated: a Kafka client's bootstrap.servers."""
    addresses = []
    for broker_id in cluster.broker_ids:
        path = Path(cluster.broker_dir(broker_id)) / "kafka-listener"
        support.wait_until(path.exists, timeout_s=timeout_s,
                           what=f"broker {broker_id}'s KAFKA listener address")
        addresses.append(path.read_text().strip())
    return ",".join(addresses)


@pytest.fixture(scope="module")
def kafka(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str]]:
    """``(cluster, KAFKA bootstrap address)``: one started broker with a KAFKA listener on a
    free port, shared by the tests of a module. A module may set ``KAFKA_CONFIGS`` (broker
    configs added to the listener's) and ``KAFKA_TOPICS`` (``(name, partitions)`` pairs,
    created before the first test)."""
    from rillet.admin import Admin, NewTopic

    module = request.module
    name = module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    configs = {"listeners": "KAFKA://127.0.0.1:0", **getattr(module, "KAFKA_CONFIGS", {})}
    cluster = LocalCluster(tmp_path_factory.mktemp(name), 1, configs)
    try:
        cluster.start(timeout_s=60)
        topics = getattr(module, "KAFKA_TOPICS", ())
        if topics:
            with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
                admin.create_topics([NewTopic(t, n, 1) for t, n in topics])
        yield cluster, kafka_bootstrap(cluster)
    finally:
        cluster.stop(timeout_s=10)


@pytest.fixture
def shared_cluster(module_cluster: LocalCluster) -> LocalCluster:
    """``module_cluster``, checked alive before each test so that a test which crashed the
    broker is reported as such. A module opts in with a fixture of its own::

        @pytest.fixture
        def cluster(shared_cluster):
            return shared_cluster

    (``wire`` then talks to the shared broker, too)."""
    for broker_id in module_cluster.broker_ids:
        assert module_cluster.pid(broker_id) is not None, (
            f"the module's shared broker {broker_id} died in an earlier test:\n"
            + module_cluster.stderr_tail(broker_id)
        )
    return module_cluster


@pytest.fixture
def cluster3_configs() -> dict[str, str]:
    """FAST_CLUSTER_CONFIGS, for tests that build their own multi-broker cluster."""
    return dict(FAST_CLUSTER_CONFIGS)


@pytest.fixture
def cluster3(cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    """A started three-broker LocalCluster (three controller voters) with fast timeouts."""
    return cluster_factory(3, FAST_CLUSTER_CONFIGS)


class Wire:
    """A thin test client: typed requests through a ClientEndpoint, no rillet client code."""

    def __init__(self, address: str) -> None:
        from rillet.transport.endpoint import ClientEndpoint

        self.address = address
        self.endpoint = ClientEndpoint()

    def call(self, request, timeout_ms: int = 10_000):
        return self.endpoint.request(self.address, request, timeout_ms).result(
            timeout_ms / 1000 + 5
        )

    def create_topic(self, name: str, partitions: int = 1, configs=None, rf: int = 1):
        from rillet.transport import protocol as P

        topic = P.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=rf, configs=configs or {}
        )
        return self.call(P.CreateTopicsRequest(topics=(topic,))).topics[0]

    def produce(self, topic: str, partition: int, records: bytes, acks: int = 1):
        from rillet.transport import protocol as P

        part = P.ProducePartition(partition=partition, records=records)
        request = P.ProduceRequest(
            acks=acks, topics=(P.ProduceTopic(name=topic, partitions=(part,)),)
        )
        response = self.call(request)
        return None if response is None else response.topics[0].partitions[0]

    def fetch(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_wait_ms: int = 0,
        min_bytes: int = 1,
        max_bytes: int = 1 << 20,
    ):
        from rillet.transport import protocol as P

        part = P.FetchPartition(
            partition=partition, fetch_offset=offset, partition_max_bytes=max_bytes
        )
        request = P.FetchRequest(
            max_wait_ms=max_wait_ms,
            min_bytes=min_bytes,
            topics=(P.FetchTopic(name=topic, partitions=(part,)),),
        )
        return self.call(request, timeout_ms=max_wait_ms + 10_000).topics[0].partitions[0]

    def list_offset(self, topic: str, partition: int, timestamp: int):
        from rillet.transport import protocol as P

        part = P.ListOffsetsPartition(partition=partition, timestamp=timestamp)
        request = P.ListOffsetsRequest(topics=(P.ListOffsetsTopic(name=topic, partitions=(part,)),))
        return self.call(request).topics[0].partitions[0]

    def fetch_all(self, topic: str, partition: int, start: int = 0) -> list:
        """Every record from ``start`` up to the high watermark."""
        from rillet.logstore.batch import records

        out: list = []
        offset = start
        while True:
            part = self.fetch(topic, partition, offset)
            assert part.error_code == 0, part
            got = list(records(part.records))
            out.extend(r for r in got if r.offset >= offset)
            if not got:
                return out
            offset = got[-1].offset + 1

    def close(self) -> None:
        self.endpoint.close()


@pytest.fixture
def wire_factory() -> Iterator[Callable[[LocalCluster], Wire]]:
    made: list[Wire] = []

    def make(cluster: LocalCluster, broker_id: int = 1) -> Wire:
        w = Wire(cluster.address(broker_id))
        made.append(w)
        return w

    try:
        yield make
    finally:
        for w in made:
            w.close()


@pytest.fixture
def wire(cluster: LocalCluster, wire_factory) -> Wire:
    """A ``Wire`` connected to the ``cluster`` fixture's broker 1."""
    return wire_factory(cluster)
