"""What TLS and half-open connections cost the KAFKA listener (docs/security.md,
"SASL_SSL and SSL", "Handshake timeout").

Per round, alternating: a one-broker `--secure` cluster whose KAFKA listener is
SASL_PLAINTEXT, then one that is SASL_SSL (`tls=True`); on each, a confluent-kafka producer
(SCRAM-SHA-256, acks=1, linger.ms=5) of N records of S bytes and a consumer (assign) reading
them back; the broker's CPU per record (/proc) for produce and for consume. On the SASL_SSL
cluster also: a producer sending one record at a time and waiting for it (latency p50/p99
over M sends), alone and then beside 500 raw TCP connections that never start their
handshake (250 on each listener; handshake.timeout.ms is 10 s, so they are all open while
it runs).

    .venv/bin/python bench/kafka_tls_bench.py --records 100000 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import confluent_kafka

from rillet import Admin, NewTopic
from rillet.launcher import LocalCluster


def broker_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def conf(cluster, **extra) -> dict:
    return {"bootstrap.servers": cluster.kafka_bootstrap_servers,
            **cluster.kafka_client_settings, **extra}


def produce_consume(cluster, pid: int, n: int, size: int) -> tuple[float, float]:
    value = b"x" * size
    p = confluent_kafka.Producer(conf(cluster, acks=1, **{"linger.ms": 5}))
    cpu = broker_cpu_s(pid)
    for _ in range(n):
        while True:
            try:
                p.produce("bench", value)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(120) == 0
    produce_us = (broker_cpu_s(pid) - cpu) / n * 1e6
    c = confluent_kafka.Consumer(conf(cluster, **{"group.id": "b", "enable.auto.commit": False}))
    c.assign([confluent_kafka.TopicPartition("bench", 0, confluent_kafka.OFFSET_BEGINNING)])
    cpu, got = broker_cpu_s(pid), 0
    while got < n:
        for m in c.consume(10000, 1.0):
            if m.error() is None:
                got += 1
    consume_us = (broker_cpu_s(pid) - cpu) / n * 1e6
    c.close()
    return produce_us, consume_us


def latencies(cluster, m: int) -> tuple[float, float]:
    p = confluent_kafka.Producer(conf(cluster, acks=1, **{"linger.ms": 0}))
    p.produce("bench", b"warm")
    p.flush(30)
    out = []
    for _ in range(m):
        t = time.perf_counter()
        p.produce("bench", b"y" * 100)
        assert p.flush(30) == 0
        out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return statistics.median(out), out[int(len(out) * 0.99) - 1]


def one(tls: bool, args) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cluster = LocalCluster(Path(d), 1, secure=True, kafka=True, tls=tls)
        cluster.start(timeout_s=60)
        try:
            with Admin({**cluster.client_security,
                        "bootstrap.servers": cluster.bootstrap_servers}) as admin:
                admin.create_topics([NewTopic("bench")])
            pid = cluster.pid(next(iter(cluster.ports)))
            out = dict(zip(("produce_us", "consume_us"),
                           produce_consume(cluster, pid, args.records, args.size), strict=True))
            if tls:
                out["alone_ms"] = latencies(cluster, args.sends)
                socks = []
                native = cluster.bootstrap_servers.rsplit(":", 1)
                kafka = cluster.kafka_bootstrap_servers.rsplit(":", 1)
                for i in range(500):
                    host, port = native if i % 2 else kafka
                    socks.append(socket.create_connection((host, int(port))))
                out["beside_500_ms"] = latencies(cluster, args.sends)
                for s in socks:
                    s.close()
            return out
        finally:
            cluster.stop(timeout_s=10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--sends", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    for r in range(args.rounds):
        for tls in (False, True):
            res = one(tls, args)
            print(f"round {r + 1} {'SASL_SSL' if tls else 'SASL_PLAINTEXT'}: " + ", ".join(
                f"{k}={v[0]:.2f}/{v[1]:.2f} (p50/p99)" if isinstance(v, tuple) else f"{k}={v:.2f}"
                for k, v in res.items()), flush=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
