"""confluent-kafka (librdkafka) through rillet's KAFKA listener, next to rillet's native
client, in the same run and on the same broker.

One round = a fresh one-broker cluster with a KAFKA listener, then, each client in its own
process: ``rillet perf produce`` and ``rillet perf consume`` (native) of N records of S bytes
on one topic, a confluent-kafka producer (acks=1, linger.ms=5) and consumer (assign,
``consume()`` in batches) of the same N x S on another, then the same consumer on the
native topic (every batch transcoded; the Kafka topic's recent batches are served as their
producer sent them, see actors/kafka_transcode.py). Optionally (``--kcat``) kcat's round
trip of N lines. The broker's CPU per record (from /proc) for each phase.

    .venv/bin/python bench/kafka_bench.py --records 1000000 --rounds 3 [--kcat]

The ratio to quote is Kafka/native throughput, medians over the rounds (target >= 0.5).
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

from rillet.launcher import LocalCluster

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def broker_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ child processes


def child_produce(bootstrap: str, topic: str, records: int, size: int) -> None:
    import confluent_kafka as ck

    producer = ck.Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                            "enable.idempotence": False, "log_level": 0})
    value = os.urandom(size)
    failed = []

    def delivered(err, _msg):
        if err:
            failed.append(err)

    produce, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                produce(topic, value, partition=0, on_delivery=delivered)
                break
            except BufferError:
                poll(0.005)
    remaining = producer.flush(300)
    elapsed = time.perf_counter() - start
    if failed or remaining:
        raise SystemExit(f"{len(failed)} failed, {remaining} undelivered: {failed[:3]}")
    print(f"{records / elapsed:.0f}")


def child_consume(bootstrap: str, topic: str, records: int, extra: dict | None = None) -> None:
    import confluent_kafka as ck

    consumer = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "kafka-bench",
                            "enable.auto.commit": False, "log_level": 0,
                            "fetch.max.bytes": 50 * 1024 * 1024, **(extra or {})})
    # as `rillet perf consume` does (its partitions_for_topic before its clock): the
    # connection and the topic's metadata first, then the clock
    consumer.list_topics(topic, timeout=30)
    start = time.perf_counter()
    consumer.assign([ck.TopicPartition(topic, 0, 0)])
    seen = 0
    deadline = time.monotonic() + 600
    while seen < records and time.monotonic() < deadline:
        for m in consumer.consume(10_000, 1.0):
            if m.error() is None:
                seen += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    if seen < records:
        raise SystemExit(f"read {seen} of {records}")
    print(f"{records / elapsed:.0f}")


# ------------------------------------------------------------------------------ rounds


def _run(args: list[str], env: dict | None = None, stdin: str | None = None) -> str:
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900, input=stdin)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout


def one_round(records: int, size: int, kcat: bool, tuned: list[str] = ()) -> dict:
    me = [sys.executable, os.path.abspath(__file__)]
    with tempfile.TemporaryDirectory(prefix="rillet-kafka-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1, configs={"listeners": "KAFKA://127.0.0.1:0"})
        cluster.start()
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            for topic in ("native", "kafka", "kcat"):
                _run([*RILLET, "topic", "create", topic, "-p", "1"], env)
            bootstrap = (Path(cluster.broker_dir(1)) / "kafka-listener").read_text().strip()
            pid = cluster.pid(1)
            cpu, out = [broker_cpu_s(pid)], {}

            def phase(name, args, parse, stdin=None):
                start = time.perf_counter()
                text = _run(args, env, stdin)
                out[name] = parse(text, time.perf_counter() - start)
                cpu.append(broker_cpu_s(pid))
                out[name + "_broker_us"] = (cpu[-1] - cpu[-2]) / records * 1e6

            phase("native_produce", [*RILLET, "perf", "produce", "--topic", "native",
                                     "--num-records", str(records), "--record-size", str(size),
                                     "--throughput", "-1", "--producer-props", "acks=1"],
                  lambda t, _: float(t.strip().splitlines()[-1].split(" records/sec")[0]
                                     .split(", ")[-1]))
            phase("native_consume", [*RILLET, "perf", "consume", "--topic", "native",
                                     "--messages", str(records)],
                  lambda t, _: float(t.strip().splitlines()[-1].split(", ")[5]))
            phase("kafka_produce", [*me, "--child", "produce", bootstrap, "kafka",
                                    str(records), str(size)],
                  lambda t, _: float(t.strip().splitlines()[-1]))
            phase("kafka_consume", [*me, "--child", "consume", bootstrap, "kafka",
                                    str(records)],
                  lambda t, _: float(t.strip().splitlines()[-1]))
            # the native producer's records: every batch transcoded (no producer's bytes kept)
            phase("kafka_consume_native", [*me, "--child", "consume", bootstrap, "native",
                                           str(records)],
                  lambda t, _: float(t.strip().splitlines()[-1]))
            if tuned:  # the same consumer with --tuned settings (e.g. fetch.queue.backoff.ms)
                phase("kafka_consume_tuned", [*me, "--child", "consume", bootstrap, "kafka",
                                              str(records), *tuned],
                      lambda t, _: float(t.strip().splitlines()[-1]))
                phase("kafka_consume_native_tuned", [*me, "--child", "consume", bootstrap,
                                                     "native", str(records), *tuned],
                      lambda t, _: float(t.strip().splitlines()[-1]))
            if kcat:
                lines = "".join(f"k{i % 1000}:{'v' * (size - 6)}{i:05d}\n"
                                for i in range(records))
                phase("kcat_produce", ["kcat", "-b", bootstrap, "-P", "-t", "kcat", "-p", "0",
                                       "-K:", "-X", "linger.ms=5"],
                      lambda _t, s: records / s, stdin=lines)
                phase("kcat_consume", ["kcat", "-b", bootstrap, "-C", "-t", "kcat", "-p", "0",
                                       "-o", "beginning", "-e", "-q", "-K:"],
                      lambda _t, s: records / s)
            return out
        finally:
            cluster.stop()


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "produce":
            child_produce(rest[0], rest[1], int(rest[2]), int(rest[3]))
        else:
            child_consume(rest[0], rest[1], int(rest[2]),
                          dict(kv.split("=", 1) for kv in rest[3:]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kcat", action="store_true", help="also kcat -P / -C of N lines")
    ap.add_argument("--tuned", action="append", default=[], metavar="KEY=VALUE",
                    help="also run the Kafka consumer with these librdkafka settings "
                         "(e.g. fetch.queue.backoff.ms=10; bench/README.md says why)")
    args = ap.parse_args()
    rows = []
    for i in range(args.rounds):
        r = one_round(args.records, args.record_size, args.kcat, args.tuned)
        rows.append(r)
        print(f"round {i + 1} (load {os.getloadavg()[0]:.1f}): "
              + ", ".join(f"{k} {v:,.0f}/s ({r[k + '_broker_us']:.2f} us/rec broker)"
                          for k, v in r.items() if not k.endswith("_us")), flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print(f"\nmedians of {len(rows)} rounds, {args.records:,} x {args.record_size} B, acks=1:")
    for k in rows[0]:
        if not k.endswith("_us"):
            print(f"  {k:<20} {med[k]:>12,.0f} rec/s   broker {med[k + '_broker_us']:.2f} us/rec")
    print(f"ratio Kafka/native: produce {med['kafka_produce'] / med['native_produce']:.2f}, "
          f"consume {med['kafka_consume'] / med['native_consume']:.2f} (of the native "
          f"producer's records: {med['kafka_consume_native'] / med['native_consume']:.2f})")
    if args.tuned:
        print(f"with {' '.join(args.tuned)}: consume "
              f"{med['kafka_consume_tuned'] / med['native_consume']:.2f} (of the native "
              f"producer's records: "
              f"{med['kafka_consume_native_tuned'] / med['native_consume']:.2f})")


if __name__ == "__main__":
    main()
