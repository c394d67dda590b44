"""The cost of the Prometheus metrics on the hot path: produce/consume throughput with
``metrics.port`` on (and scraped every second, harsher than Prometheus' 15 s default) vs off
(``metrics.port=-1``: nothing counted), in the same run, rounds interleaved on/off/off/on so
both sides see the same machine load. Target: on/off >= 0.95 (issue #20).

One round = a fresh one-broker cluster in a temp dir, ``rillet perf produce`` (acks=1) then
``rillet perf consume`` of N records of S bytes (each its own process).

    .venv/bin/python bench/metrics_bench.py --records 300000 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

from rillet.launcher import LocalCluster

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def _scraper(url: str, stop: threading.Event, count: list[int]) -> None:
    while not stop.wait(1.0):
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()
        count[0] += 1


def one_round(metrics_on: bool, records: int, size: int) -> tuple[float, float, int]:
    """(produce rec/s, consume rec/s, scrapes) of one fresh cluster."""
    with tempfile.TemporaryDirectory(prefix="rillet-metrics-bench-") as tmp:
        configs = {} if metrics_on else {"metrics.port": "-1"}
        cluster = LocalCluster(Path(tmp), brokers=1, configs=configs)
        cluster.start()
        stop, scrapes = threading.Event(), [0]
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            subprocess.run([*RILLET, "topic", "create", "bench", "-p", "1"], env=env,
                           check=True, capture_output=True)
            url = cluster.metrics_url(1)
            assert (url is not None) == metrics_on
            if url:
                threading.Thread(target=_scraper, args=(url, stop, scrapes), daemon=True).start()
            out = subprocess.run(
                [*RILLET, "perf", "produce", "--topic", "bench", "--num-records", str(records),
                 "--record-size", str(size), "--producer-props", "acks=1"],
                env=env, check=True, capture_output=True, text=True, timeout=600).stdout
            produce = float(out.strip().splitlines()[-1].split(" records/sec")[0]
                            .split(", ")[-1])
            out = subprocess.run(
                [*RILLET, "perf", "consume", "--topic", "bench", "--messages", str(records)],
                env=env, check=True, capture_output=True, text=True, timeout=600).stdout
            consume = float(out.strip().splitlines()[-1].split(", ")[5])
        finally:
            stop.set()
            cluster.stop()
    return produce, consume, scrapes[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=4, help="rounds per side")
    args = ap.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    order = [True, False, False, True] * ((args.rounds + 1) // 2)
    for i, on in enumerate(order[: 2 * args.rounds]):
        p, c, n = one_round(on, args.records, args.record_size)
        results[on].append((p, c))
        print(f"round {i + 1} metrics {'on ' if on else 'off'}: produce {p:,.0f} rec/s, "
              f"consume {c:,.0f} rec/s" + (f" ({n} scrapes)" if on else ""), flush=True)
    med = statistics.median
    pon, poff = med(p for p, _ in results[True]), med(p for p, _ in results[False])
    con, coff = med(c for _, c in results[True]), med(c for _, c in results[False])
    print(f"\nmedians: produce on {pon:,.0f} / off {poff:,.0f} = {pon / poff:.3f}; "
          f"consume on {con:,.0f} / off {coff:,.0f} = {con / coff:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
