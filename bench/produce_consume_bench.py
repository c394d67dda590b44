"""Produce/consume throughput of rillet against Redis Streams, in the same session.

One round = a fresh one-broker cluster in a temp dir, ``rillet perf produce`` (its own process)
then ``rillet perf consume`` (a new process) of N records of S bytes, then (with ``--peers``)
the Redis Streams peer of ../shared/peers (``bench_redis.py --client hiredis --fsync everysec
--workloads w1,w2``, same record count and value size). Rounds are interleaved so both sides
see the same machine load; the table gives every round and the medians, with rillet/Redis
ratios. CPU: the client process (from /proc, children included) and the broker (from /proc).

    .venv/bin/python bench/produce_consume_bench.py --records 1000000 --rounds 3 \\
        --peers ../shared/peers          # after ../shared/peers/setup.sh
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet.launcher import LocalCluster

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def broker_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_timed(args: list[str], env: dict) -> tuple[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out.stdout, cpu


def rillet_round(records: int, size: int, keys: int, extra_props: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="rillet-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1)
        cluster.start()
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            subprocess.run([*RILLET, "topic", "create", "bench", "-p", "1"], env=env,
                           check=True, capture_output=True)
            pid = cluster.pid(1)
            b0 = broker_cpu_s(pid)
            out, pcpu = run_timed([*RILLET, "perf", "produce", "--topic", "bench",
                                   "--num-records", str(records), "--record-size", str(size),
                                   "--key-count", str(keys), "--producer-props", "acks=1",
                                   *extra_props], env)
            b1 = broker_cpu_s(pid)
            produce_line = out.strip().splitlines()[-1]
            out2, ccpu = run_timed([*RILLET, "perf", "consume", "--topic", "bench",
                                    "--messages", str(records)], env)
            b2 = broker_cpu_s(pid)
            row = out2.strip().splitlines()[-1].split(", ")
        finally:
            cluster.stop()
    produce_rate = float(produce_line.split(" records/sec")[0].split(", ")[-1])
    return {
        "produce": produce_rate, "consume": float(row[5]), "produce_line": produce_line,
        "consume_row": ", ".join(row),
        "produce_cpu_us": (pcpu / records * 1e6, (b1 - b0) / records * 1e6),
        "consume_cpu_us": (ccpu / records * 1e6, (b2 - b1) / records * 1e6),
    }


def redis_round(peers: Path, records: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="peer-results-") as results:
        env = {**os.environ, "PEER_RESULTS": results, "PEER_N_RECORDS": str(records)}
        out = subprocess.run([str(peers / ".venv/bin/python"), "bench_redis.py", "--client",
                              "hiredis", "--fsync", "everysec", "--workloads", "w1,w2"],
                             cwd=peers, env=env, capture_output=True, text=True, timeout=600)
    rates = dict(re.findall(r"\] (W\d)\s+([\d,]+) rec/s", out.stdout))
    if "W1" not in rates or "W2" not in rates:
        raise RuntimeError(f"bench_redis.py output not understood:\n{out.stdout}\n{out.stderr}")
    return {"produce": float(rates["W1"].replace(",", "")),
            "consume": float(rates["W2"].replace(",", ""))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=0,
                    help="cycle through this many 16-byte keys (1000 = the Redis workload)")
    ap.add_argument("--peers", type=Path, help="../shared/peers, to run Redis in the same session")
    ap.add_argument("--producer-props", nargs="*", default=[])
    args = ap.parse_args()
    rows = []
    for i in range(args.rounds):
        r = rillet_round(args.records, args.record_size, args.keys, args.producer_props)
        red = redis_round(args.peers.resolve(), args.records) if args.peers else None
        rows.append((r, red))
        print(f"round {i + 1}: rillet produce {r['produce']:,.0f}/s consume {r['consume']:,.0f}/s"
              f" (cpu us/rec client/broker: produce {r['produce_cpu_us'][0]:.2f}/"
              f"{r['produce_cpu_us'][1]:.2f}, consume {r['consume_cpu_us'][0]:.2f}/"
              f"{r['consume_cpu_us'][1]:.2f})"
              + (f"; redis W1 {red['produce']:,.0f}/s W2 {red['consume']:,.0f}/s" if red else ""),
              flush=True)
        print(f"    {r['produce_line']}\n    {r['consume_row']}", flush=True)
        time.sleep(1)
    med = statistics.median
    p = med(r["produce"] for r, _ in rows)
    c = med(r["consume"] for r, _ in rows)
    print(f"\nmedian of {len(rows)} rounds: rillet produce {p:,.0f} rec/s, consume {c:,.0f} rec/s")
    if args.peers:
        rp = med(red["produce"] for _, red in rows)
        rc = med(red["consume"] for _, red in rows)
        print(f"median redis (hiredis, everysec): W1 {rp:,.0f} rec/s, W2 {rc:,.0f} rec/s")
        print(f"ratio rillet/redis: produce {p / rp:.2f}x, consume {c / rc:.2f}x")


if __name__ == "__main__":
    main()
