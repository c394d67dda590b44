"""What one unbatched request costs: broker CPU and round trip per request (issue #12).

Two workloads against a fresh one-broker cluster, each in its own client process:

* ``sync`` (rillet's client): ``send(...).get()`` of one 100-byte record at a time, acks=1,
  ``linger.ms=0``: every request is alone on the wire, so the broker's CPU over the loop
  divided by the requests is the per-request path (decode, session, append, answer, and the
  thread hand-offs around them); the client's CPU per request likewise.
* ``kafka`` (librdkafka through confluent-kafka, on the broker's KAFKA listener):
  ``--records`` messages of 100 bytes at ``--rate`` a second with ``linger.ms=0``, acks=1, as
  a Kafka application that does not batch sends them (one request per message while the
  broker keeps up); prints how long the run took (``records / rate`` when the broker keeps
  up), the delivery latency and the broker's CPU per message.

Figures are per run; compare checkouts alternating on the same machine (PYTHONPATH=<checkout>
runs that checkout's broker and client).

    .venv/bin/python bench/request_cost.py [--requests 3000] [--rounds 2]
    .venv/bin/python bench/request_cost.py --workload kafka --records 20000 --rate 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet.launcher import LocalCluster


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def sync_client(bootstrap: str, broker_pid: int, requests: int, rounds: int) -> None:
    from rillet import Producer

    with Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1}) as p:
        for _ in range(300):  # warm-up: connections, metadata, the broker's first appends
            p.send("cost", b"x" * 100, partition=0).get(10)
        for n in range(rounds):
            broker0, mine0, start = cpu_s(broker_pid), time.process_time(), time.monotonic()
            rtt = []
            for _ in range(requests):
                t = time.perf_counter()
                p.send("cost", b"x" * 100, partition=0).get(10)
                rtt.append(time.perf_counter() - t)
            wall = time.monotonic() - start
            print(json.dumps({
                "round": n + 1, "requests_s": round(requests / wall),
                "rtt_p50_us": round(pct(rtt, 0.5) * 1e6), "rtt_p90_us": round(pct(rtt, 0.9) * 1e6),
                "broker_cpu_us_per_request": round((cpu_s(broker_pid) - broker0) / requests * 1e6),
                "client_cpu_us_per_request": round((time.process_time() - mine0) / requests * 1e6),
            }), flush=True)


def kafka_client(bootstrap: str, broker_pid: int, records: int, rate: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1})
    latencies: list[float] = []
    value = os.urandom(100)
    broker0, start = cpu_s(broker_pid), time.monotonic()
    for i in range(records):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent = time.monotonic()
        p.produce("cost", value, partition=0,
                  on_delivery=lambda err, msg, sent=sent: latencies.append(time.monotonic() - sent))
        p.poll(0)
    p.flush(120)
    wall = time.monotonic() - start
    print(json.dumps({
        "records": records, "rate": rate, "seconds": round(wall, 2),
        "ideal_seconds": round(records / rate, 2), "delivered": len(latencies),
        "delivery_p50_ms": round(pct(latencies, 0.5) * 1000, 2),
        "delivery_p99_ms": round(pct(latencies, 0.99) * 1000, 2),
        "broker_cpu_us_per_message": round((cpu_s(broker_pid) - broker0) / records * 1e6),
    }), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=("sync", "kafka"), default="sync")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--role")  # internal: the client process
    ap.add_argument("--bootstrap")
    ap.add_argument("--broker-pid", type=int)
    args = ap.parse_args()
    if args.role == "sync":
        sync_client(args.bootstrap, args.broker_pid, args.requests, args.rounds)
        return 0
    if args.role == "kafka":
        kafka_client(args.bootstrap, args.broker_pid, args.records, args.rate)
        return 0
    from rillet import Admin, NewTopic

    print(f"checkout: {Path(__import__('rillet').__file__).resolve().parents[1]}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rillet-cost-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1, kafka=args.workload == "kafka")
        cluster.start()
        try:
            with Admin({"bootstrap.servers": cluster.bootstrap_servers}) as admin:
                admin.create_topics([NewTopic("cost", 1, 1)])
            broker_pid = _broker_pid(tmp)
            bootstrap = (cluster.kafka_bootstrap_servers if args.workload == "kafka"
                         else cluster.bootstrap_servers)
            subprocess.run([sys.executable, __file__, "--role", args.workload, "--bootstrap",
                            bootstrap, "--broker-pid", str(broker_pid), "--requests",
                            str(args.requests), "--rounds", str(args.rounds), "--records",
                            str(args.records), "--rate", str(args.rate)],
                           check=True, timeout=600)
        finally:
            cluster.stop()
    return 0


def _broker_pid(data_dir: str) -> int:
    """The broker process serving ``data_dir`` (its command line names it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"rillet.actors.node" in cmd and any(data_dir.encode() in c for c in cmd):
            return int(entry.name)
    raise RuntimeError("no broker process found")


if __name__ == "__main__":
    sys.exit(main())
