"""Idle CPU per broker at scale: 3 brokers, RF=3, one topic of P partitions (scale_bench's
cluster and settle rule), then each broker's CPU (/proc utime+stime) over successive quiet
windows, and the full ISRs after them. For A/B runs start it with each checkout's venv
python, alternating (the brokers run the code of the interpreter's install).

    .venv/bin/python bench/idle_bench.py --partitions 3000 --windows 4 --window-s 10
"""

from __future__ import annotations

import argparse
import os
import time

import scale_bench as sb  # this folder: started as a script, it is on sys.path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=3000)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--after-settle-s", type=float, default=15.0)
    args = ap.parse_args()
    with sb.scratch_cluster("rillet-idle-") as (cluster, env):
        t0 = time.monotonic()
        sb.create_topic(env, "spread", args.partitions)
        sb.settle(cluster, "spread", args.partitions, args.partitions, t0, 600)
        print(f"settled in {time.monotonic() - t0:.1f} s; load {os.getloadavg()}", flush=True)
        time.sleep(args.after_settle_s)
        pids = {b: cluster.pid(b) for b in cluster.broker_ids}
        for w in range(args.windows):
            before = {b: sb.cpu_s(pid) for b, pid in pids.items()}
            time.sleep(args.window_s)
            cpu = {b: round(100 * (sb.cpu_s(pid) - before[b]) / args.window_s, 2)
                   for b, pid in pids.items()}
            print(f"window {w}: idle CPU % per broker {cpu}; load {os.getloadavg()[0]:.1f}",
                  flush=True)
        print(f"full ISRs after idle: {sb.full_isrs(cluster, 'spread')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
