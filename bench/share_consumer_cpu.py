"""CPU per record of one ShareConsumer (consume + implicit accept) next to a plain Consumer
reading the same records, in the same run (bench/README.md, "Queues").

Starts one broker (``LocalCluster``, a throw-away data dir), produces ``--records`` records
of ``--record-size`` bytes to a topic of ``--partitions`` partitions (``rillet perf
produce``, another process), then, ``--rounds`` times: a plain Consumer (assign +
seek_to_beginning) reads them all, and a ShareConsumer of a new share group (implicit
acceptance, ``share.auto.offset.reset=earliest``) consumes and accepts them all, ending with
``commit_sync``. Both run in this process with the same ``max.poll.records``. For each it
prints the client's CPU (``time.process_time()``: every thread of this process, the
endpoint's I/O thread too) and the broker process's CPU (utime + stime from
/proc/<pid>/stat) per record, in microseconds, and the share/plain ratio of client CPU.

CPU per record, not wall throughput, is the figure to compare on a shared, noisy machine:
other processes slow the wall clock but not the CPU a record costs.

    .venv/bin/python bench/share_consumer_cpu.py --records 200000 --rounds 3
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

from rillet import Admin, Consumer, ShareConsumer
from rillet.launcher import LocalCluster
from rillet.records import TopicPartition

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def broker_cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def plain(bootstrap: str, topic: str, partitions: int, records: int, max_poll: int) -> None:
    """Read every record with a plain Consumer."""
    with Consumer({"bootstrap.servers": bootstrap, "max.poll.records": max_poll}) as c:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = 0
        deadline = time.monotonic() + 300
        while got < records and time.monotonic() < deadline:
            for rs in c.poll(100).values():
                got += len(rs)
    if got < records:
        raise RuntimeError(f"plain consumer: {got} of {records} records")


def share(bootstrap: str, topic: str, records: int, max_poll: int, rnd: int) -> None:
    """Consume and accept every record with one ShareConsumer."""
    group = f"cpu-{rnd}-{int(time.time() * 1000)}"
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.alter_group_configs(group, set={"share.auto.offset.reset": "earliest"})
    c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                       "max.poll.records": max_poll, "fetch.max.wait.ms": 100})
    try:
        c.subscribe([topic])
        got = 0  # counted, not checked per offset: the client's own work is what is measured
        deadline = time.monotonic() + 300
        while got < records and time.monotonic() < deadline:
            got += len(c.poll(timeout_ms=100))
        c.commit_sync()
    finally:
        c.close()
    if got < records:
        raise RuntimeError(f"share consumer: {got} of {records} records")


def idle_rate(pid: int, seconds: float = 2.0) -> float:
    """The broker's CPU seconds per second with no client working (ticker, timers):
    subtracted from a run's broker CPU, so a run slowed by other processes on the machine
    is not charged more per record for the broker's clock-driven work."""
    u0, s0 = broker_cpu_s(pid)
    time.sleep(seconds)
    u1, s1 = broker_cpu_s(pid)
    return (u1 - u0 + s1 - s0) / seconds


def measure(fn, pid: int, records: int, idle: float) -> dict:
    c0, (u0, s0) = time.process_time(), broker_cpu_s(pid)
    t0 = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t0
    c1, (u1, s1) = time.process_time(), broker_cpu_s(pid)
    broker = u1 - u0 + s1 - s0
    return {"client_us": (c1 - c0) / records * 1e6, "broker_us": broker / records * 1e6,
            "broker_net_us": max(0.0, broker - idle * seconds) / records * 1e6,
            "broker_sys_us": (s1 - s0) / records * 1e6, "rps": records / seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--max-poll-records", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--share-only", action="store_true", help="skip the plain consumer")
    args = ap.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory(prefix="share-cpu-") as tmp:
        cluster = LocalCluster(Path(tmp) / "data", brokers=1)
        cluster.start()
        try:
            b = cluster.bootstrap_servers
            env = {**os.environ, "HOME": tmp, "RILLET_CONFIG_DIR": tmp}
            topic = "share-cpu"
            subprocess.run([*RILLET, "topic", "create", topic, "-p", str(args.partitions),
                            "-r", "1", "-b", b], check=True, capture_output=True, env=env)
            subprocess.run([*RILLET, "perf", "produce", "-t", topic, "-n", str(n), "-s",
                            str(args.record_size), "-b", b, "--producer-props", "acks=1"],
                           check=True, capture_output=True, env=env)
            pid = cluster.pid(1)
            print(f"broker pid {pid}; {n} records produced", flush=True)  # for a profiler
            rows = []
            for rnd in range(args.rounds):
                idle = idle_rate(pid)
                p = None if args.share_only else measure(
                    lambda: plain(b, topic, args.partitions, n, args.max_poll_records), pid, n,
                    idle)
                s = measure(lambda rnd=rnd: share(b, topic, n, args.max_poll_records, rnd),
                            pid, n, idle)
                rows.append((p, s))
                line = (f"round {rnd + 1}: share client {s['client_us']:.2f} us/rec, broker "
                        f"{s['broker_us']:.2f} us/rec (net of idle {s['broker_net_us']:.2f}, system "
                        f"{s['broker_sys_us']:.2f}; "
                        f"{s['rps']:,.0f} rec/s)")
                if p:
                    line += (f"; plain client {p['client_us']:.2f}, broker {p['broker_us']:.2f}"
                             f" (net {p['broker_net_us']:.2f})"
                             f" ({p['rps']:,.0f} rec/s); client ratio "
                             f"{s['client_us'] / p['client_us']:.2f}x")
                print(line + f"; load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            cluster.stop()
    med = statistics.median
    line = (f"median of {len(rows)}: share client {med(s['client_us'] for _, s in rows):.2f}"
            f" us/rec, broker {med(s['broker_us'] for _, s in rows):.2f} us/rec (net of idle "
            f"{med(s['broker_net_us'] for _, s in rows):.2f})")
    if not args.share_only:
        line += (f"; plain client {med(p['client_us'] for p, _ in rows):.2f}, broker "
                 f"{med(p['broker_us'] for p, _ in rows):.2f}")
    print(line)


if __name__ == "__main__":
    main()
