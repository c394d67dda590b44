"""What one partition batch costs the cluster, measured without the spread produce's feedback.

In a spread produce (scale_bench, spread_profile) the batch size is not fixed: slower brokers
hold requests longer, the producer drains its partitions more often into smaller batches, and
the number of partition batches for the same 200,000 records varied 3x between runs on this
machine, so its rate and CPU figures move with the machine's load more than with a change to
the code. Here the shape is fixed. A 3-broker cluster (scale_bench's scratch cluster, RF=3,
min.insync.replicas=2) and a topic of P partitions; each round queues ``--records`` records
for every partition with the producer holding them (``linger.ms`` of a minute), then
``flush()``: each partition's records leave as one batch, and the round ends when every
batch is acknowledged (``acks=all``: the followers have them too; with ``--acks 1`` the
script also waits for the followers). The first ``--warmup`` rounds are not counted (a
partition's first append writes its leader-epoch file). Printed: the brokers' CPU (user +
system, the three together) per partition batch and per record, the producer's CPU per
batch, and the broker counters that changed (turns by lane, collections).

    .venv/bin/python bench/batch_cost.py [--partitions 3000] [--records 9] [--rounds 10] \\
        [--acks all] [--config KEY=VALUE ...] [--py-spy DIR]

With ``--py-spy DIR`` each broker is sampled over the counted rounds (``--gil``: Python CPU)
into ``DIR/broker-<id>.raw``.

The rounds go one after another, so the batch sizes do not depend on how fast the brokers
are: the CPU per batch compares across changes. What other processes do to the machine still
shows (CPU time per unit of work grows with the load), so compare runs alternated in the same
minutes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import scale_bench as sb  # this folder: started as a script, it is on sys.path

from rillet import Producer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=3000)
    ap.add_argument("--records", type=int, default=9, help="records per partition per round")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--acks", choices=("1", "all"), default="all")
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                    help="a broker config for the scratch cluster (repeatable)")
    ap.add_argument("--py-spy", metavar="DIR", help="sample each broker into DIR")
    args = ap.parse_args()
    configs = dict(kv.split("=", 1) for kv in args.config)
    value = os.urandom(100)
    with sb.scratch_cluster("rillet-batch-cost-", configs) as (cluster, env):
        t0 = time.monotonic()
        sb.create_topic(env, "cost", args.partitions)
        sb.settle(cluster, "cost", args.partitions, args.partitions, t0, 600)
        pids = {b: cluster.pid(b) for b in cluster.broker_ids}
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers,
                             "acks": args.acks, "linger.ms": 60_000})
        keys = [str(p).encode() for p in range(args.partitions)]
        sent = 0
        spies: list[subprocess.Popen] = []
        try:
            for n in range(args.warmup + args.rounds):
                if n == args.warmup:
                    load0 = os.getloadavg()[0]
                    cpu0 = {b: sb.cpu_s(pid) for b, pid in pids.items()}
                    counters0 = {b: sb.counters(cluster, b) for b in pids}
                    mine0, wall0, sent0 = sb.cpu_s(os.getpid()), time.monotonic(), sent
                    if args.py_spy:
                        spies = [sb.py_spy_record(pid, f"{args.py_spy}/broker-{b}.raw")
                                 for b, pid in pids.items()]
                for p in range(args.partitions):
                    for _ in range(args.records):
                        producer.send("cost", value=value, key=keys[p], partition=p)
                producer.flush(120)
                sent += args.partitions * args.records
                if args.acks == "1":  # the followers have it all before the next round
                    sb.replicated(cluster.bootstrap_servers, "cost", sent, 300)
            wall = time.monotonic() - wall0
            mine = sb.cpu_s(os.getpid()) - mine0
            cpu = {b: sb.cpu_s(pid) - cpu0[b] for b, pid in pids.items()}
            counters = {b: sb.counters(cluster, b) for b in pids}
        finally:
            for spy in spies:
                spy.send_signal(2)  # py-spy writes its file on SIGINT
            for spy in spies:
                spy.wait(60)
            producer.close()
    batches = args.partitions * args.rounds
    records = sent - sent0
    total = sum(cpu.values())
    print(f"{args.partitions} partitions x {args.records} records, {args.rounds} rounds, "
          f"acks={args.acks}, configs {configs or 'default'}: {wall:.2f} s, load {load0:.1f}")
    print(f"brokers: {total:.2f} s CPU = {total / batches * 1e6:.0f} us per partition batch, "
          f"{total / records * 1e6:.1f} us per record "
          f"({', '.join(f'{b}: {c:.2f} s' for b, c in cpu.items())})")
    print(f"producer process: {mine:.2f} s CPU = {mine / batches * 1e6:.0f} us per batch "
          "(with the consumer's end-offset polls under --acks 1)")
    for b in pids:
        delta = {k: v - counters0[b].get(k, 0) for k, v in counters[b].items()
                 if isinstance(v, int) and v != counters0[b].get(k, 0)}
        print(f"broker {b} counters changed: {delta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
