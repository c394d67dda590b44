"""How the producer's batching settles in a spread produce, with the producer configs varied.

One 3-broker cluster (scale_bench's scratch cluster, RF=3) with a topic "spread" of P
partitions and a topic "three" of 3. For each variant (a JSON object of producer configs; the
defaults when none is given), in rounds: ``--records`` keyed records of 100 bytes to
"spread" (keys over every partition) and the same to "three", acks as given, each from its
own producer process, then a wait until the followers have them. Printed per run: the rate,
how long the ``send()`` loop took (what the producer could put in its accumulator while the
brokers worked), the producer's CPU, its requests, records per request and average batch
size (Producer.metrics()), and the load average.

    .venv/bin/python bench/spread_batching.py [--partitions 3000] [--records 200000] \\
        [--acks all] [--rounds 2] ['{}' '{"linger.ms": 200}' ...]

docs/runtime.md ("What is left") has what the runs showed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import scale_bench as sb  # this folder: started as a script, it is on sys.path

_PRODUCE = """
import json, os, sys, time
from rillet.producer import Producer
n, keys, acks, topic, props = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4],
                               json.loads(sys.argv[5]))
producer = Producer({"bootstrap.servers": os.environ["RILLET_BROKERS"], "acks": acks, **props})
value, names = os.urandom(100), [str(i).encode() for i in range(keys)]
start, cpu = time.monotonic(), time.process_time()
for i in range(n):
    producer.send(topic, value=value, key=names[i % keys])
loop = time.monotonic() - start
producer.flush()
elapsed = time.monotonic() - start
m = producer.metrics()["producer-metrics"]
print(json.dumps({"rec_s": n / elapsed, "loop_s": loop, "total_s": elapsed,
                  "cpu_s": time.process_time() - cpu, "requests": m.get("request-total"),
                  "records_per_request": m.get("records-per-request-avg"),
                  "batch_bytes": m.get("batch-size-avg")}))
producer.close()
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=3000)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--acks", choices=("1", "all"), default="all")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("variants", nargs="*", default=["{}"],
                    help="producer configs as JSON objects, e.g. '{\"linger.ms\": 200}'")
    args = ap.parse_args()
    variants = [json.loads(v) for v in args.variants]
    with sb.scratch_cluster("rillet-spread-batching-") as (cluster, env):
        t0 = time.monotonic()
        sb.create_topic(env, "spread", args.partitions)
        sb.create_topic(env, "three", 3)
        sb.settle(cluster, "spread", args.partitions, args.partitions + 3, t0, 900)
        sent = {"spread": 0, "three": 0}
        for _ in range(args.rounds):
            for props in variants:
                for topic in ("spread", "three"):
                    keys = args.partitions * 4 if topic == "spread" else 1000
                    out = subprocess.run(
                        [sys.executable, "-c", _PRODUCE, str(args.records), str(keys),
                         args.acks, topic, json.dumps(props)],
                        env=env, capture_output=True, text=True, timeout=900)
                    sent[topic] += args.records
                    lines = out.stdout.strip().splitlines()
                    if out.returncode != 0 or not lines:
                        print(f"{topic} {props}: failed: {out.stderr[-600:]}", flush=True)
                        return 1
                    r = json.loads(lines[-1])
                    print(f"{topic:6} {json.dumps(props):40} {r['rec_s']:>9,.0f} rec/s  "
                          f"send loop {r['loop_s']:.2f} s of {r['total_s']:.2f}  "
                          f"cpu {r['cpu_s']:.2f} s  requests {r['requests']}  "
                          f"records/request {r['records_per_request']:,.0f}  "
                          f"batch {r['batch_bytes']:,.0f} B  load {os.getloadavg()[0]:.1f}",
                          flush=True)
                    sb.replicated(cluster.bootstrap_servers, topic, sent[topic])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
