"""End-to-end latency: a producer at a fixed rate, a consumer in another process.

The workload of ../shared/peers' W3: a consumer process starts first (assign mode, polling),
then a producer process sends 500 warm-up records (not counted), waits for their answers, and
sends N measured records of 100 bytes at a steady R records/s with ``linger.ms=0``; each value
starts with the send time (CLOCK_MONOTONIC ns, shared by every process on the host). Latency = the time the consumer
has the record minus the send time. Runs rillet with acks=1 on one broker and acks=all on
three brokers (RF=3, min.insync.replicas=2), and with ``--peers`` the Redis Streams W3 of
../shared/peers in the same session, so the figures compare on the same machine load.

The wait after the warm-up keeps a fresh topic's start out of the figures: with acks=all the
first answer needs every replica of the ISR fetching, and a follower that fetched before the
leader hosted the partition backs off for 500 ms first (before 2026-12-07, tenth session,
that start was in ~1 run of 3 as a p99 of 90-120 ms).

    .venv/bin/python bench/e2e_latency.py --records 20000 --rate 5000 --peers /tmp/peers
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet.launcher import LocalCluster

TS = struct.Struct("<q")
WARMUP = 500


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def consumer(bootstrap: str, total: int, out: str) -> None:
    from rillet import Consumer, TopicPartition

    lat: list[float] = []
    seen = 0
    deadline = time.monotonic() + 120
    with Consumer({"bootstrap.servers": bootstrap, "fetch.max.wait.ms": 100}) as c:
        c.assign([TopicPartition("lat", 0)])
        c.seek_to_beginning()
        Path(out + ".ready").write_text("1")
        while seen < total + WARMUP and time.monotonic() < deadline:
            for records in c.poll(100, max_records=10_000).values():
                now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
                for r in records:
                    if seen >= WARMUP:
                        lat.append((now - TS.unpack_from(r.value)[0]) / 1e6)
                    seen += 1
    Path(out).write_text(json.dumps(lat))


def producer(bootstrap: str, total: int, rate: int, acks: str) -> None:
    from rillet import Producer

    pad = os.urandom(92)
    config = {"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 0}
    with Producer(config) as p:
        for count in (WARMUP, total):
            start = time.monotonic()
            for i in range(count):
                target = start + i / rate
                delay = target - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                value = TS.pack(time.clock_gettime_ns(time.CLOCK_MONOTONIC)) + pad
                p.send("lat", value, partition=0)
            p.flush(60)  # the warm-up's last answer before the measured records


def rillet_run(brokers: int, acks: str, total: int, rate: int) -> dict:
    from rillet import Admin, NewTopic

    with tempfile.TemporaryDirectory(prefix="rillet-lat-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=brokers)
        cluster.start()
        try:
            boot = cluster.bootstrap_servers
            with Admin({"bootstrap.servers": boot}) as a:
                configs = {"min.insync.replicas": "2"} if brokers >= 3 else {}
                a.create_topics([NewTopic("lat", 1, min(3, brokers), configs=configs)])
            out = str(Path(tmp) / "lat.json")
            me = [sys.executable, __file__]
            cons = subprocess.Popen([*me, "--role", "consumer", "--bootstrap", boot,
                                     "--records", str(total), "--out", out])
            try:
                deadline = time.monotonic() + 30
                while not Path(out + ".ready").exists():
                    if time.monotonic() > deadline:
                        raise RuntimeError("the consumer did not start")
                    time.sleep(0.05)
                subprocess.run([*me, "--role", "producer", "--bootstrap", boot, "--records",
                                str(total), "--rate", str(rate), "--acks", acks],
                               check=True, timeout=300)
                cons.wait(180)
            finally:
                if cons.poll() is None:
                    cons.kill()
            lat = json.loads(Path(out).read_text())
        finally:
            cluster.stop()
    return summary(lat, total)


def summary(lat: list[float], total: int) -> dict:
    return {
        "received": len(lat),
        "expected": total,
        "p50": percentile(lat, 0.50),
        "p99": percentile(lat, 0.99),
        "p999": percentile(lat, 0.999),
        "mean": statistics.fmean(lat) if lat else float("nan"),
    }


def redis_run(peers: Path, total: int) -> dict:
    env = {**os.environ, "PEER_LAT_RECORDS": str(total),
           "PEER_RESULTS": tempfile.mkdtemp(prefix="peer-lat-")}
    out = subprocess.run([str(peers / ".venv/bin/python"), "bench_redis.py", "--client",
                          "hiredis", "--fsync", "everysec", "--workloads", "w3"],
                         cwd=peers, env=env, capture_output=True, text=True, timeout=300)
    m = re.search(r"W3\s+p50 ([\d.]+) p99 ([\d.]+) p99\.9 ([\d.]+)", out.stdout + out.stderr)
    if not m:
        raise RuntimeError(f"bench_redis.py output not understood:\n{out.stdout}\n{out.stderr}")
    return {"p50": float(m[1]), "p99": float(m[2]), "p999": float(m[3])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", choices=("consumer", "producer"))
    ap.add_argument("--bootstrap")
    ap.add_argument("--out")
    ap.add_argument("--acks", default="1")
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--rate", type=int, default=5_000)
    ap.add_argument("--peers", type=Path, help="../shared/peers (after its setup.sh)")
    ap.add_argument("--only", choices=("acks1", "acksall"))
    args = ap.parse_args()
    if args.role == "consumer":
        consumer(args.bootstrap, args.records, args.out)
        return 0
    if args.role == "producer":
        producer(args.bootstrap, args.records, args.rate, args.acks)
        return 0
    import rillet.actors

    # the checkout the brokers run (rillet/__init__.py maps a checkout's own folders)
    print(f"broker code: {Path(rillet.actors.__file__).resolve().parent.parent}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    rows = []
    if args.only in (None, "acks1"):
        rows.append(("rillet acks=1, 1 broker", rillet_run(1, "1", args.records, args.rate)))
    if args.only in (None, "acksall"):
        rows.append(("rillet acks=all, RF=3", rillet_run(3, "all", args.records, args.rate)))
    if args.peers:
        rows.append(("redis streams W3 (hiredis)", redis_run(args.peers.resolve(), args.records)))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"{'run':<30} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}")
    for name, r in rows:
        print(f"{name:<30} {r['p50']:8.3f} {r['p99']:8.3f} {r['p999']:9.3f}"
              + (f"   ({r['received']}/{r['expected']} received)" if "received" in r else ""))
    print(json.dumps({name: r for name, r in rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
