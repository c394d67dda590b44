"""CURVE on vs off: produce and consume throughput on a one-broker cluster (issue #19).

Each round runs a plaintext cluster and a ``--secure`` one (CURVE on the client listener,
the admin's keys in the round's profile), one after the other, each with
``rillet perf produce`` (acks=1, its own process) then ``rillet perf consume`` of the same N
records; the report is the medians and the CURVE/plain ratios (issue target: >= 0.7).

    .venv/bin/python bench/curve_bench.py --records 300000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from rillet.launcher import LocalCluster

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def _run(args: list[str], env: dict) -> str:
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def one_round(records: int, size: int, secure: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="rillet-curve-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1, secure=secure)
        cluster.start(timeout_s=60)
        try:
            profile = {"brokers": cluster.bootstrap_servers, "data_dir": tmp}
            if cluster.client_security:
                profile["security"] = cluster.client_security
            Path(tmp, "profile.json").write_text(json.dumps(profile))
            env = {**os.environ, "RILLET_CONFIG_DIR": tmp}
            env.pop("RILLET_BROKERS", None)
            _run([*RILLET, "topic", "create", "bench", "-p", "1"], env)
            out = _run([*RILLET, "perf", "produce", "--topic", "bench", "--num-records",
                        str(records), "--record-size", str(size), "--producer-props",
                        "acks=1"], env)
            produce = float(out.strip().splitlines()[-1].split(" records/sec")[0]
                            .split(", ")[-1])
            out = _run([*RILLET, "perf", "consume", "--topic", "bench", "--messages",
                        str(records)], env)
            consume = float(out.strip().splitlines()[-1].split(", ")[5])
        finally:
            cluster.stop()
    return produce, consume


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rates: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for i in range(args.rounds):
        for secure in (False, True) if i % 2 == 0 else (True, False):  # alternate the order
            p, c = one_round(args.records, args.record_size, secure)
            rates[secure].append((p, c))
            print(f"round {i + 1} {'CURVE' if secure else 'plain'}: produce {p:,.0f}/s "
                  f"consume {c:,.0f}/s", flush=True)
    med = {s: [statistics.median(r[k] for r in rates[s]) for k in (0, 1)] for s in rates}
    print(f"medians plain: produce {med[False][0]:,.0f}/s consume {med[False][1]:,.0f}/s")
    print(f"medians CURVE: produce {med[True][0]:,.0f}/s consume {med[True][1]:,.0f}/s")
    print(f"CURVE/plain: produce {med[True][0] / med[False][0]:.2f} "
          f"consume {med[True][1] / med[False][1]:.2f}")


if __name__ == "__main__":
    main()
