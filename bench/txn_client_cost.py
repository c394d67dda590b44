"""Where a transactional produce spends its time, next to a plain one, in one process
(bench/README.md, "Transactions"): client CPU per record (``time.process_time()`` around the
produce loop, which counts the sender and I/O threads too), the broker processes' CPU per
record (``/proc/<pid>/stat``), and per transaction the wall time of the commit and of the
gap in which nothing of the producer was in flight or waiting (the idle gap).

    .venv/bin/python bench/txn_client_cost.py --bootstrap 127.0.0.1:9092 -t t1 -n 300000 \
        --rounds 2 --duration-ms 1000 --brokers-pids "$(pgrep -d, -f 'rillet.*broker')"

Runs alternate: plain, transactional, plain, transactional... (same-run ratios only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

from rillet.producer import Producer

_TICK = os.sysconf("SC_CLK_TCK")


def _broker_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
        except OSError:
            pass
    return total


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, by thread name (``/proc/self/task``)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


def run(args, transactional: bool, tag: str) -> dict:
    config = {"bootstrap.servers": args.bootstrap, "acks": "all"}
    if transactional:
        config["transactional.id"] = f"txn-client-cost-{tag}"
    payload = b"A" * args.size
    commits: list[float] = []
    with Producer(config) as p:
        p.partitions_for(args.topic)
        if transactional:
            p.init_transactions()
            p.begin_transaction()
        send = p.send
        topic = args.topic
        duration_s = args.duration_ms / 1000
        b0 = _broker_cpu(args.pids)
        th0 = _thread_cpu()
        c0 = time.process_time()
        t0 = time.monotonic()
        started = t0
        for i in range(args.n):
            send(topic, payload)
            if transactional and i % 100 == 99 and time.monotonic() - started >= duration_s:
                c = time.monotonic()
                p.commit_transaction()
                commits.append(time.monotonic() - c)
                p.begin_transaction()
                started = time.monotonic()
        if transactional:
            c = time.monotonic()
            p.commit_transaction()
            commits.append(time.monotonic() - c)
        p.flush()
        wall = time.monotonic() - t0
        cpu = time.process_time() - c0
        bcpu = _broker_cpu(args.pids) - b0
        th1 = _thread_cpu()
    threads = {k: (v - th0.get(k, 0.0)) / args.n * 1e6 for k, v in th1.items()}
    out = {"rate": args.n / wall, "cpu_us": cpu / args.n * 1e6, "broker_us": bcpu / args.n * 1e6,
           "wall": wall, "threads": threads}
    if commits:
        out["commits"] = len(commits)
        out["commit_ms"] = statistics.median(commits) * 1000
        out["commit_total_s"] = sum(commits)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("-t", "--topic", required=True)
    ap.add_argument("-n", type=int, default=300000)
    ap.add_argument("-s", "--size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration-ms", type=int, default=1000)
    ap.add_argument("--brokers-pids", default="")
    args = ap.parse_args()
    args.pids = [int(x) for x in args.brokers_pids.split(",") if x]
    print(f"load {open('/proc/loadavg').read().split()[:3]}")
    for r in range(args.rounds):
        for txn in (False, True):
            res = run(args, txn, f"{os.getpid()}-{r}")
            extra = ""
            if txn:
                extra = (f" commits {res['commits']} median {res['commit_ms']:.1f} ms, "
                         f"in commit {res['commit_total_s']:.2f} s of {res['wall']:.2f} s")
            print(f"round {r} {'txn  ' if txn else 'plain'}: {res['rate']:9.0f} rec/s  client "
                  f"{res['cpu_us']:.2f} us/rec  brokers {res['broker_us']:.2f} us/rec{extra}",
                  flush=True)
            print("    threads us/rec: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                    sorted(res["threads"].items()) if v > 0.01))


if __name__ == "__main__":
    main()
