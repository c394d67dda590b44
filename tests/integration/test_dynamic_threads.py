"""Dynamic thread pools (issue #21; docs/operations.md, "Dynamic broker configs"):
``num.io.threads`` altered 8 -> 2 -> 6 on a running broker under produce load with
``rillet config alter --broker 1``; the broker's io lane and its OS thread count (psutil)
follow, and every record is acknowledged and readable afterwards."""

from __future__ import annotations

import threading

import psutil
import pytest
from click.testing import CliRunner
from rillet.transport import protocol as P

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet.cli.main import cli
from rillet.launcher import LocalCluster
from tests.integration.conftest import TEST_BROKER_CONFIGS
from tests.support import wait_until

PARTITIONS = 12  # more partitions than io threads: the lane is busy at its full size


def _io_threads(endpoint, cluster) -> int:
    stats = endpoint.request(cluster.address(1), P.BrokerStatsRequest(), 5000).result(10)
    return stats.lane_threads.get("io", 0)


def _alter(cluster, value: int) -> None:
    done = CliRunner().invoke(cli, ["config", "alter", "--broker", "1", "--set",
                                    f"num.io.threads={value}", "-b", cluster.bootstrap_servers])
    assert done.exit_code == 0, done.output


@pytest.mark.timeout(180)
def test_num_io_threads_follows_alter_under_produce_load(tmp_path):
    cluster = LocalCluster(tmp_path / "c", 1, {**TEST_BROKER_CONFIGS, "num.io.threads": "8"})
    stop, futures, errors = threading.Event(), [], []
    try:
        cluster.start(timeout_s=60)
        bootstrap = cluster.bootstrap_servers
        with Admin({"bootstrap.servers": bootstrap}) as admin:
            admin.create_topics([NewTopic("load", PARTITIONS, 1)])
        proc = psutil.Process(cluster.pid(1))

        def produce() -> None:
            try:
                with Producer({"bootstrap.servers": bootstrap, "acks": -1,
                               "linger.ms": 0}) as producer:
                    i = 0
                    while not stop.is_set():
                        futures.append(producer.send("load", b"v%d" % i, partition=i % PARTITIONS))
                        i += 1
                        if i % 200 == 0:
                            producer.flush(30)
                    producer.flush(30)
            except Exception as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        loader = threading.Thread(target=produce, daemon=True)
        loader.start()
        # the load under way (records acknowledged) before the threads are counted: the
        # broker's log flusher starts with its first write
        wait_until(lambda: len(futures) > 400 and futures[200].done(), 60, "the produce load")
        with cluster._client_endpoint() as endpoint:
            high = wait_until(lambda: (n := _io_threads(endpoint, cluster)) >= 6 and n, 60,
                              "the io lane running at (nearly) its 8 threads under load")
            os_high = proc.num_threads()
            _alter(cluster, 2)
            wait_until(lambda: _io_threads(endpoint, cluster) == 2, 60, "the io lane at 2")
            wait_until(lambda: proc.num_threads() <= os_high - (high - 2), 60,
                       f"the broker's OS threads down by {high - 2} from {os_high}")
            os_low = proc.num_threads()
            _alter(cluster, 6)
            wait_until(lambda: _io_threads(endpoint, cluster) == 6, 60, "the io lane at 6")
            wait_until(lambda: proc.num_threads() >= os_low + 4, 60,
                       f"the broker's OS threads up by 4 from {os_low}")
        stop.set()
        loader.join(60)
        assert not errors, errors
        assert len(futures) > 0
        acked = [f.get(30) for f in futures]  # every record acknowledged
        assert len(acked) == len(futures)
        with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"}) as c:
            c.assign([TopicPartition("load", p) for p in range(PARTITIONS)])
            seen: set[bytes] = set()
            wait_until(lambda: seen.update(
                r.value for rs in c.poll(500, max_records=10_000).values() for r in rs
            ) or len(seen) >= len(futures), 60, "every acknowledged record read back")
        assert seen == {b"v%d" % i for i in range(len(futures))}
    finally:
        stop.set()
        cluster.stop(timeout_s=15)
