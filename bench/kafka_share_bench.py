"""A Kafka share consumer (confluent-kafka's ``ShareConsumer``, librdkafka) through the KAFKA
listener next to rillet's native ShareConsumer, same broker, same records, same run
(bench/README.md, "Queues"; docs/kafka-compat.md, "Share groups").

Starts one broker with a KAFKA listener (a throw-away data dir), produces ``--records``
records of ``--record-size`` bytes to a topic of ``--partitions`` partitions (``rillet perf
produce``), then, ``--rounds`` times and alternating which goes first: each consumer, in a
new share group (implicit acceptance, ``share.auto.offset.reset=earliest``), consumes and
accepts every record, ending with ``commit_sync``. Prints the broker process's CPU per
record (and net of its idle rate), the client's CPU per record (this process) and records/s,
and the Kafka/native ratio of broker CPU per record: what serving a share consumer through
the KAFKA listener (share sessions, transcoding to v2 batches) costs over the native door.

    .venv/bin/python bench/kafka_share_bench.py --records 50000 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from share_consumer_cpu import RILLET, idle_rate, measure, share

from rillet import Admin
from rillet.launcher import LocalCluster


def kafka_share(kafka_bootstrap: str, native_bootstrap: str, topic: str, records: int,
                max_poll: int, rnd: int) -> None:
    """Consume and accept every record with one confluent-kafka ShareConsumer."""
    from confluent_kafka import ShareConsumer

    group = f"kafka-{rnd}-{int(time.time() * 1000)}"
    with Admin({"bootstrap.servers": native_bootstrap}) as admin:
        admin.alter_group_configs(group, set={"share.auto.offset.reset": "earliest"})
    c = ShareConsumer({"bootstrap.servers": kafka_bootstrap, "group.id": group,
                       "max.poll.records": max_poll, "fetch.wait.max.ms": 100, "log_level": 3})
    try:
        c.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 300
        while got < records and time.monotonic() < deadline:
            got += len(c.poll(0.1))
        c.commit_sync(60)
    finally:
        c.close()
    if got < records:
        raise RuntimeError(f"kafka share consumer: {got} of {records} records")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--max-poll-records", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory(prefix="kafka-share-") as tmp:
        cluster = LocalCluster(Path(tmp) / "data", 1, {"listeners": "KAFKA://127.0.0.1:0"})
        cluster.start(timeout_s=60)
        try:
            b = cluster.bootstrap_servers
            path = Path(cluster.broker_dir(1)) / "kafka-listener"
            while not path.exists():
                time.sleep(0.05)
            kb = path.read_text().strip()
            env = {**os.environ, "HOME": tmp, "RILLET_CONFIG_DIR": tmp}
            topic = "kafka-share"
            subprocess.run([*RILLET, "topic", "create", topic, "-p", str(args.partitions),
                            "-r", "1", "-b", b], check=True, capture_output=True, env=env)
            subprocess.run([*RILLET, "perf", "produce", "-t", topic, "-n", str(n), "-s",
                            str(args.record_size), "-b", b, "--producer-props", "acks=1"],
                           check=True, capture_output=True, env=env)
            pid = cluster.pid(1)
            rows = []
            for rnd in range(args.rounds):
                idle = idle_rate(pid)
                runs = {
                    "native": lambda rnd=rnd: share(b, topic, n, args.max_poll_records, rnd),
                    "kafka": lambda rnd=rnd: kafka_share(kb, b, topic, n,
                                                         args.max_poll_records, rnd),
                }
                order = ["native", "kafka"] if rnd % 2 == 0 else ["kafka", "native"]
                got = {name: measure(runs[name], pid, n, idle) for name in order}
                rows.append(got)
                k, s = got["kafka"], got["native"]
                print(f"round {rnd + 1} ({' then '.join(order)}): kafka broker "
                      f"{k['broker_us']:.2f} us/rec (net {k['broker_net_us']:.2f}), client "
                      f"{k['client_us']:.2f}, {k['rps']:,.0f} rec/s; native broker "
                      f"{s['broker_us']:.2f} (net {s['broker_net_us']:.2f}), client "
                      f"{s['client_us']:.2f}, {s['rps']:,.0f} rec/s; broker ratio "
                      f"{k['broker_us'] / s['broker_us']:.2f}x; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            cluster.stop()
    med = statistics.median
    print(f"median of {len(rows)}: kafka broker {med(r['kafka']['broker_us'] for r in rows):.2f}"
          f" us/rec, native broker {med(r['native']['broker_us'] for r in rows):.2f} us/rec, "
          f"ratio {med(r['kafka']['broker_us'] / r['native']['broker_us'] for r in rows):.2f}x;"
          f" kafka {med(r['kafka']['rps'] for r in rows):,.0f} rec/s, native "
          f"{med(r['native']['rps'] for r in rows):,.0f} rec/s")


if __name__ == "__main__":
    sys.exit(main())
