"""Where a spread produce's time goes: one keyed produce over P partitions of a 3-broker
cluster (RF=3, scale_bench's topic and settle rule), with what each side spent on it.

Printed after the produce: the producer's own metrics (requests, their latency, records per
request, the average batch size: with keys over thousands of partitions a batch holds a few
records, so the per-batch and per-partition costs decide the rate), the CPU of each broker
split into user and system time, the busiest threads of broker 1 with their user and
system CPU and their voluntary context switches (how often they blocked: a thread hand-off or
a lock), the change of each broker's BrokerCounters (garbage collections, replica fetch rounds, ...), and how
many appends the leaders refused (``refused batch`` in the broker logs, by reason). With
``--py-spy`` each broker is also sampled (``--gil``: the threads holding the interpreter
lock, i.e. Python CPU) into ``<dir>/broker-<id>.raw`` (py-spy's raw format, for flame
graphs or grep), and the producer process into ``<dir>/producer.raw``; with ``--strace FILE`` broker 1's system calls are counted into FILE
(``strace -c -f``: where its system time goes; strace slows the broker, so read the counts,
not that run's rate).

    .venv/bin/python bench/spread_profile.py --partitions 3000 --records 200000 --acks 1 \\
        [--config num.io.threads=2 ...] [--py-spy /tmp/spread]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import scale_bench as sb  # this folder: started as a script, it is on sys.path

_PRODUCE = """
import os, sys, time
from rillet.producer import Producer
n, keys, acks = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
producer = Producer({"bootstrap.servers": os.environ["RILLET_BROKERS"], "acks": acks})
value, names = os.urandom(100), [str(i).encode() for i in range(keys)]
start = time.monotonic()
for i in range(n):
    producer.send("spread", value=value, key=names[i % keys])
producer.flush()
elapsed = time.monotonic() - start
print(producer.metrics()["producer-metrics"])
print(n / elapsed)
producer.close()
"""


def threads(pid: int) -> dict[str, tuple[float, float, int]]:
    """Thread id -> (user CPU seconds, system CPU seconds, voluntary context switches)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            user, system = sb.user_sys_s(pid, tid)
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:  # the thread ended
            continue
        out[tid] = (user, system, int(status.split("voluntary_ctxt_switches:")[1].split()[0]))
    return out


def thread_names(pid: int) -> dict[str, str]:
    """Thread id -> Python thread name (py-spy dump; ids only without py-spy)."""
    try:
        dump = subprocess.run([str(Path(sys.executable).parent / "py-spy"), "dump", "-p",
                               str(pid)], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {m[1]: m[2] for m in re.finditer(r'Thread (\d+) \(\w+\): "([^"]*)"', dump)}


def refusals(data_dir: Path) -> collections.Counter:
    reasons: collections.Counter = collections.Counter()
    for log in data_dir.rglob("broker.log*"):
        with open(log, errors="replace") as f:
            for line in f:
                if "refused batch:" in line:
                    reasons[line.split("refused batch:", 1)[1].strip()[:60]] += 1
    return reasons


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=3000)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--acks", choices=("0", "1", "all"), default="1")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="a broker config for the scratch cluster (repeatable)")
    ap.add_argument("--py-spy", metavar="DIR", help="sample each broker into DIR")
    ap.add_argument("--strace", metavar="FILE",
                    help="count broker 1's system calls by thread into FILE (strace -c -f)")
    args = ap.parse_args()
    configs = dict(kv.split("=", 1) for kv in args.config)
    keys = max(args.partitions * 4, 1000)  # as scale_bench: every partition gets keys
    with sb.scratch_cluster("rillet-spread-", configs) as (cluster, env):
        t0 = time.monotonic()
        sb.create_topic(env, "spread", args.partitions)
        sb.settle(cluster, "spread", args.partitions, args.partitions, t0, 600)
        time.sleep(3)  # creation's tail (first fetches, sessions)
        pids = {b: cluster.pid(b) for b in cluster.broker_ids}
        spies = []
        if args.py_spy:
            spies = [sb.py_spy_record(pid, f"{args.py_spy}/broker-{b}.raw")
                     for b, pid in pids.items()]
            time.sleep(1)
        if args.strace:
            spies.append(subprocess.Popen(
                ["strace", "-f", "-c", "-p", str(pids[1]), "-o", args.strace],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1)
        cpu0 = {b: sb.user_sys_s(pid) for b, pid in pids.items()}
        counters0 = {b: sb.counters(cluster, b) for b in pids}
        threads0 = threads(pids[1])
        load0 = os.getloadavg()[0]
        child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        producer = subprocess.Popen([sys.executable, "-c", _PRODUCE, str(args.records),
                                     str(keys), args.acks], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if args.py_spy:
            spies.append(sb.py_spy_record(producer.pid, f"{args.py_spy}/producer.raw"))
        try:
            stdout, stderr = producer.communicate(timeout=900)
        finally:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
        out = subprocess.CompletedProcess(producer.args, producer.returncode, stdout, stderr)
        child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out.returncode != 0:
            raise SystemExit(f"produce failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        threads1 = threads(pids[1])
        cpu1 = {b: sb.user_sys_s(pid) for b, pid in pids.items()}
        for spy in spies:
            spy.send_signal(2)  # py-spy and strace write their files on SIGINT
        for spy in spies:
            spy.wait(60)
        metrics, rate = out.stdout.strip().splitlines()[-2:]
        print(f"{args.partitions} partitions, {args.records} records, acks={args.acks}, "
              f"configs {configs or 'default'}: {float(rate):,.0f} rec/s; load {load0:.1f}")
        print(f"producer: {metrics}")
        client = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)
        print(f"producer process CPU: {client:.2f} s")
        for b in pids:
            user, system = (cpu1[b][i] - cpu0[b][i] for i in (0, 1))
            print(f"broker {b}: user {user:.2f} s, system {system:.2f} s")
        names = thread_names(pids[1])
        rows = []
        for tid, (user, system, sw) in threads1.items():
            u0, s0, sw0 = threads0.get(tid, (0.0, 0.0, 0))
            rows.append((user - u0 + system - s0, user - u0, system - s0, sw - sw0,
                         names.get(tid, tid)))
        rows.sort(reverse=True)
        print("broker 1's busiest threads (CPU s: user + system, voluntary context switches):")
        for _, user, system, switches, name in rows[:12]:
            print(f"  {name:32} {user:6.2f} + {system:5.2f} {switches:8}")
        for b in pids:
            after = sb.counters(cluster, b)
            delta = {k: v - counters0[b].get(k, 0) for k, v in after.items()
                     if isinstance(v, int) and v != counters0[b].get(k, 0)}
            print(f"broker {b} counters changed: {delta}")
        print(f"appends refused: {dict(refusals(cluster.data_dir)) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
