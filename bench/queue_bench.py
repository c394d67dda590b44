"""Share-group consume+acknowledge throughput and redelivery latency (issue #15).

Against a running cluster (``bench/queue_bench.sh`` starts one):

1. **Throughput**: ``--records`` records of ``--record-size`` bytes are produced to a topic of
   ``--partitions`` partitions (``rillet perf produce``), then ``--consumers`` ShareConsumer
   processes of one share group consume and acknowledge them all (implicit acceptance, as
   Kafka's default; every poll accepts the previous one, and the last ones are accepted by
   ``commit_sync``). The clock runs from the moment the consumers start polling to the
   moment every record is accepted; the records are counted per offset, so a record
   delivered twice is reported (``duplicates``) and not counted twice.
2. **Redelivery latency**: ``--latency-records`` records are each released once with a
   requested delay (0, 100 and 1000 ms in turn) and the time from the release being durable
   (``commit_sync`` answered) to the record coming back is measured: p50/p99 of
   (observed - requested).
3. With ``--peers DIR`` (../shared/peers with its .venv): Redis Streams XREADGROUP + XACK
   (W2g) and NATS JetStream pull + ack (W2) of the same number of records, in the same run.

Prints one JSON line per measurement and a summary.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _consumer(bootstrap: str, group: str, topic: str, total: int, counter, start, done, q,
              max_poll: int, acquire_mode: str = "batch_optimized") -> None:
    from rillet import ShareConsumer

    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "max.poll.records": max_poll, "fetch.max.wait.ms": 100,
                       "share.acquire.mode": acquire_mode})
    c.subscribe([topic])
    seen: list = []
    extend = seen.extend
    got = 0
    c.poll(timeout_ms=0)  # join before the clock starts
    start.wait()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    while not done.is_set():
        records = c.poll(timeout_ms=100)
        if records:
            extend((r[1] << 40) | r[2] for r in records)
            got += len(records)
            with counter.get_lock():
                counter.value += len(records)
                if counter.value >= total:
                    done.set()
    c.commit_sync()  # the last poll's records: accepted and durable
    t1 = time.perf_counter()
    q.put({"records": got, "seconds": t1 - t0, "cpu": time.process_time() - cpu0,
           "keys": seen})
    c.close()


def throughput(bootstrap: str, topic: str, records: int, consumers: int, max_poll: int,
               acquire_mode: str = "batch_optimized") -> dict:
    ctx = mp.get_context("spawn")
    counter, start, done, q = ctx.Value("q", 0), ctx.Event(), ctx.Event(), ctx.Queue()
    group = f"bench-{int(time.time() * 1000)}"
    from rillet import Admin

    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.alter_group_configs(group, set={"share.auto.offset.reset": "earliest"})
    procs = [ctx.Process(target=_consumer, daemon=True, args=(
        bootstrap, group, topic, records, counter, start, done, q, max_poll, acquire_mode))
        for _ in range(consumers)]
    for p in procs:
        p.start()
    time.sleep(3)  # every member joined and got its assignment
    t0 = time.perf_counter()
    start.set()
    results = [q.get(timeout=600) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(30)
    keys = [k for r in results for k in r.pop("keys")]
    distinct = len(set(keys))
    return {"what": "share consume+ack", "consumers": consumers, "records": records,
            "distinct": distinct, "duplicates": len(keys) - distinct,
            "seconds": elapsed, "rps": distinct / elapsed,
            "client_cpu_us_per_record": sum(r["cpu"] for r in results) / max(1, distinct) * 1e6,
            "per_consumer": [r["records"] for r in results]}


def redelivery(bootstrap: str, topic: str, n: int) -> dict:
    from rillet import Admin, NewTopic, Producer, ShareConsumer

    group = f"bench-lat-{int(time.time() * 1000)}"
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.alter_group_configs(group, set={"share.auto.offset.reset": "earliest"})
    with Producer({"bootstrap.servers": bootstrap}) as producer:
        for _ in range(n):
            producer.send(topic, value=b"x" * 100)
        producer.flush(30)
    delays = (0, 100, 1000)
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "max.poll.records": 50, "fetch.max.wait.ms": 50})
    c.subscribe([topic])
    released: dict[int, tuple[float, int]] = {}
    lateness: dict[int, list[float]] = {d: [] for d in delays}
    deadline = time.monotonic() + 300
    while sum(map(len, lateness.values())) < n and time.monotonic() < deadline:
        batch = c.poll(timeout_ms=100)
        now = time.monotonic()
        fresh = []
        for r in batch:
            if r.delivery_count == 1:
                delay = delays[r.offset % len(delays)]
                c.acknowledge(r, "release", delay_ms=delay)
                fresh.append((r.offset, delay))
            else:
                t, delay = released.pop(r.offset)
                lateness[delay].append((now - t) * 1000 - delay)
                c.acknowledge(r, "accept")
        if batch:
            t = time.monotonic()  # the broker's delay starts when it applies the release,
            c.commit_sync()       # which is after this and before commit_sync returns
            for offset, delay in fresh:
                released[offset] = (t, delay)
    c.close()

    def pct(xs: list[float], q: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")

    return {"what": "redelivery after release", "records": n, "by_requested_delay_ms": {
        d: {"n": len(xs), "late_p50_ms": pct(xs, 0.5), "late_p99_ms": pct(xs, 0.99),
            "early": sum(x < 0 for x in xs)} for d, xs in lateness.items()}}


def peers_round(peers: Path, records: int) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="peer-results-") as results:
        env = {**os.environ, "PEER_RESULTS": results, "PEER_N_RECORDS": str(records)}
        py = str(peers / ".venv/bin/python")
        r = subprocess.run([py, "bench_redis.py", "--client", "hiredis", "--fsync", "everysec",
                            "--workloads", "w1,w2g"], cwd=peers, env=env, capture_output=True,
                           text=True, timeout=900)
        m = re.search(r"\] W2g\s+([\d,]+) rec/s", r.stdout + r.stderr)
        out["redis_xreadgroup_xack"] = float(m[1].replace(",", "")) if m else None
        r = subprocess.run([py, "bench_nats.py", "--workloads", "w1,w2"], cwd=peers, env=env,
                           capture_output=True, text=True, timeout=900)
        m = re.search(r"\] [Ww]2\s+([\d,]+) rec/s", r.stdout + r.stderr)
        out["nats_pull_ack"] = float(m[1].replace(",", "")) if m else None
        if None in out.values():
            out["peer_output"] = (r.stdout + r.stderr)[-2000:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default=os.environ.get("RILLET_BROKERS"))
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--max-poll-records", type=int, default=500)
    ap.add_argument("--share-acquire-mode", default="batch_optimized",
                    choices=("batch_optimized", "record_limit"),
                    help="the consumers' share.acquire.mode (KIP-1206; Kafka's default first)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--latency-records", type=int, default=600)
    ap.add_argument("--peers", type=Path, help="../shared/peers (with its .venv)")
    args = ap.parse_args()
    if not args.bootstrap:
        sys.exit("--bootstrap or $RILLET_BROKERS is required")
    rillet = [sys.executable, "-m", "rillet.cli.main"]
    summary: dict = {"rillet": [], "peers": []}
    for rnd in range(args.rounds):
        topic = f"queue-bench-{rnd}-{int(time.time())}"
        subprocess.run([*rillet, "topic", "create", topic, "-p", str(args.partitions), "-r", "1",
                        "-b", args.bootstrap], check=True, capture_output=True)
        subprocess.run([*rillet, "perf", "produce", "-t", topic, "-n", str(args.records), "-s",
                        str(args.record_size), "-b", args.bootstrap, "--producer-props",
                        "acks=1"], check=True, capture_output=True)
        res = throughput(args.bootstrap, topic, args.records, args.consumers,
                         args.max_poll_records, args.share_acquire_mode)
        res["load"] = os.getloadavg()[0]
        print(json.dumps(res), flush=True)
        summary["rillet"].append(res["rps"])
        if args.peers:
            peer = peers_round(args.peers.resolve(), args.records)
            print(json.dumps({"what": "peers", **peer}), flush=True)
            summary["peers"].append(peer)
    lat = redelivery(args.bootstrap, f"queue-lat-{int(time.time())}", args.latency_records)
    print(json.dumps(lat), flush=True)
    med = statistics.median(summary["rillet"])
    line = f"share consume+ack, {args.consumers} consumers: median {med:,.0f} rec/s"
    redis = [p["redis_xreadgroup_xack"] for p in summary["peers"]
             if p.get("redis_xreadgroup_xack")]
    nats = [p["nats_pull_ack"] for p in summary["peers"] if p.get("nats_pull_ack")]
    if redis:
        r = statistics.median(redis)
        line += f"; Redis XREADGROUP+XACK {r:,.0f} rec/s (ratio {med / r:.2f}x)"
    if nats:
        n = statistics.median(nats)
        line += f"; NATS pull+ack {n:,.0f} rec/s (ratio {med / n:.2f}x)"
    print(line)
    for d, s in lat["by_requested_delay_ms"].items():
        print(f"release delay {d} ms: redelivered p50 +{s['late_p50_ms']:.1f} ms, "
              f"p99 +{s['late_p99_ms']:.1f} ms late (n={s['n']}, early {s['early']})")


if __name__ == "__main__":
    main()
