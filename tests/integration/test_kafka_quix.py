"""A Quix Streams application (tests/tools/quix/app.py: filter and map to an output topic,
processing_guarantee exactly-once, so Kafka transactions with offsets sent to them) running
unchanged on rillet's KAFKA listener. Quix Streams lives in its own venv
(~/.cache/rillet/tools/quix-venv), installed by tests/tools/quix/install.sh (it pins an older
confluent-kafka than the project's dev extra). Slow: run with ``-m slow``."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from rillet.launcher import LocalCluster
from tests.integration.conftest import TEST_BROKER_CONFIGS
from tests.support import require_tool, wait_until

# ~10 s (the app's interpreter, topic creation, a broker): beside the CI budget, hence slow
pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]
TOOLS = Path(__file__).resolve().parents[1] / "tools" / "quix"
VENV = Path.home() / ".cache" / "rillet" / "tools" / "quix-venv"  # tests/tools/quix/install.sh
CONFIGS = {
    **TEST_BROKER_CONFIGS,
    "listeners": "KAFKA://127.0.0.1:0",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
}


def test_a_quix_streams_app_runs_exactly_once(tmp_path) -> None:
    from confluent_kafka import Consumer

    python = require_tool("quix-python", str(VENV / "bin" / "python"))
    cluster = LocalCluster(tmp_path / "cluster", 1, CONFIGS)
    try:
        cluster.start(timeout_s=30)
        path = Path(cluster.broker_dir(cluster.broker_ids[0])) / "kafka-listener"
        wait_until(path.exists, timeout_s=30, what="the KAFKA listener's address")
        bootstrap = path.read_text().strip()
        done = subprocess.run(
            [python, str(TOOLS / "app.py"), bootstrap, "exactly-once", "quix-app",
             "numbers", "tens", str(tmp_path / "state"), "5"],
            capture_output=True, text=True, timeout=100, cwd=tmp_path)
        assert done.returncode == 0 and "processed" in done.stdout, done.stderr[-3000:]
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                      "enable.auto.commit": False, "log_level": 3})
        try:
            c.subscribe(["tens"])
            got: list[int] = []
            deadline = time.monotonic() + 30
            while len(got) < 5:
                assert time.monotonic() < deadline, f"output so far: {got}"
                m = c.poll(0.2)
                if m is not None and m.error() is None:
                    got.append(json.loads(m.value())["n"])
            assert sorted(got) == [0, 20, 40, 60, 80]
            # the app's group committed its input offsets inside its transactions
            from confluent_kafka import TopicPartition

            g = Consumer({"bootstrap.servers": bootstrap, "group.id": "quix-app", "log_level": 3})
            try:
                (tp,) = g.committed([TopicPartition("numbers", 0)], 10)
                assert tp.offset >= 9  # the odd numbers are consumed too, only filtered out
            finally:
                g.close()
        finally:
            c.close()
    finally:
        cluster.stop(timeout_s=10)
