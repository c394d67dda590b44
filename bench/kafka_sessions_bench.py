"""Fetch sessions (KIP-227) on the KAFKA listener: the broker's CPU for a consumer of many
partitions, with and without a session, alternating in one run on one broker.

kafka-python's consumer (librdkafka never opens a session: it always sends epoch -1)
assigned ``--partitions`` partitions of one topic: (1) reading ``--records`` records
spread over the partitions, broker CPU per record; (2) then idle, polling with nothing new
(``fetch_max_wait_ms`` 100), broker CPU ms per second. ``enable_incremental_fetch_sessions`` True/False
is the only difference between the two sides.

    .venv/bin/python bench/kafka_sessions_bench.py [--partitions 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from rillet.launcher import LocalCluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_bench import RILLET, _run, broker_cpu_s  # noqa: E402


def _consumer(bootstrap: str, topic: str, partitions: int, sessions: bool):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                      fetch_max_wait_ms=100, enable_incremental_fetch_sessions=sessions)
    c.assign([TopicPartition(topic, p) for p in range(partitions)])
    c.seek_to_beginning()
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.partitions
    with tempfile.TemporaryDirectory(prefix="rillet-kafka-sessions-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1, configs={"listeners": "KAFKA://127.0.0.1:0"})
        cluster.start()
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            _run([*RILLET, "topic", "create", "many", "-p", str(n)], env)
            bootstrap = (Path(cluster.broker_dir(1)) / "kafka-listener").read_text().strip()
            pid = cluster.pid(1)
            import confluent_kafka as ck

            producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "1",
                                    "linger.ms": 20, "log_level": 0})
            value = os.urandom(100)
            for i in range(args.records):
                while True:
                    try:
                        producer.produce("many", value, partition=i % n)
                        break
                    except BufferError:
                        producer.poll(0.01)
            assert producer.flush(120) == 0
            best: dict[tuple[str, bool], float] = {}
            for _ in range(args.rounds):
                for sessions in (False, True):
                    c = _consumer(bootstrap, "many", n, sessions)
                    try:
                        cpu0, seen = broker_cpu_s(pid), 0
                        deadline = time.monotonic() + 300
                        while seen < args.records and time.monotonic() < deadline:
                            seen += sum(map(len, c.poll(timeout_ms=200).values()))
                        read_us = (broker_cpu_s(pid) - cpu0) / max(seen, 1) * 1e6
                        # idle: every partition at its end, long polls of 100 ms
                        cpu0, end = broker_cpu_s(pid), time.monotonic() + args.idle_s
                        while time.monotonic() < end:
                            c.poll(timeout_ms=100)
                        idle_ms = (broker_cpu_s(pid) - cpu0) / args.idle_s * 1e3
                    finally:
                        c.close()
                    for key, v in ((("read us/record", sessions), read_us),
                                   (("idle ms/s", sessions), idle_ms)):
                        best[key] = min(best.get(key, float("inf")), v)
                    print(f"sessions={sessions}: read {seen} records {read_us:.2f} us/rec broker, "
                          f"idle {idle_ms:.0f} ms CPU per s broker "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
            print(f"\nbest of {args.rounds}, {n} partitions, broker CPU:")
            for what in ("read us/record", "idle ms/s"):
                off, on = best[(what, False)], best[(what, True)]
                print(f"  {what:<15} full fetches {off:8.2f}   fetch session {on:8.2f}   "
                      f"({off / on:.2f}x)")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
