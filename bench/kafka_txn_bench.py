"""A confluent-kafka producer through rillet's KAFKA listener, with and without
transactions (acks=all, 100 B records): records/s and the median commit_transaction().

    python bench/kafka_txn_bench.py [TRANSACTIONS] [RECORDS_PER_TRANSACTION] [DATA_DIR]

Starts a one-broker cluster in DATA_DIR (a temporary directory by default) and stops it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

from rillet.admin import Admin, NewTopic
from rillet.launcher import LocalCluster


def run(bootstrap: str, transactional: bool, n_txn: int, per: int) -> str:
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all", "log_level": 3}
    if transactional:
        conf["transactional.id"] = "bench"
    p = Producer(conf)
    if transactional:
        p.init_transactions(30)
    value, commits = b"x" * 100, []
    start = time.monotonic()
    for _ in range(n_txn):
        if transactional:
            p.begin_transaction()
        for _ in range(per):
            while True:
                try:
                    p.produce("perf", value)
                    break
                except BufferError:
                    p.poll(0.01)
        if transactional:
            t = time.monotonic()
            p.commit_transaction(30)
            commits.append(time.monotonic() - t)
        else:
            p.flush(30)
    rate = n_txn * per / (time.monotonic() - start)
    extra = f", commit_transaction median {sorted(commits)[len(commits) // 2] * 1000:.1f} ms" \
        if commits else ""
    mode = "transactions" if transactional else "no transactions (flush per batch)"
    return f"{mode}: {rate:,.0f} records/s ({n_txn} x {per}){extra}"


def main() -> None:
    n_txn = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    per = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    data = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix="txn-bench-"))
    cluster = LocalCluster(data, 1, {"listeners": "KAFKA://127.0.0.1:0",
                                     "transaction.state.log.num.partitions": "1"})
    cluster.start(timeout_s=30)
    try:
        admin = Admin({"bootstrap.servers": cluster.bootstrap_servers})
        try:
            admin.create_topics([NewTopic("perf", 3, 1)])
        finally:
            admin.close()
        path = Path(cluster.broker_dir(cluster.broker_ids[0])) / "kafka-listener"
        deadline = time.monotonic() + 30
        while not path.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the KAFKA listener did not start")
            time.sleep(0.05)
        bootstrap = path.read_text().strip()
        for transactional in (True, False):
            print(run(bootstrap, transactional, n_txn, per), flush=True)
    finally:
        cluster.stop(timeout_s=10)


if __name__ == "__main__":
    main()
