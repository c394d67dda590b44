"""In-process cost of the broker's metrics hooks (docs/metrics.md, "Cost"): what one request
or one Raft step pays with metrics on. Min over repeats of ``timeit`` (the least disturbed
run on a shared machine).

    PYTHONPATH=. .venv/bin/python bench/metrics_hooks_bench.py
"""

from __future__ import annotations

import argparse
import timeit
from types import SimpleNamespace as N

from rillet.actors.metrics import BrokerMetrics, count_records
from rillet.actors.metrics_sources import MetricSources, RaftStats, count_isr_changes
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P


def _batch(n: int, size: int = 100) -> bytes:
    b = BatchBuilder()
    for i in range(n):
        b.append(1000 + i, None, b"x" * size)
    return b.build()


def _fetch_answer(batches: int, per_batch: int) -> P.FetchResponse:
    records = _batch(per_batch) * batches
    return P.FetchResponse(topics=(P.FetchTopicResponse(name="t", partitions=(
        P.FetchPartitionResponse(partition=0, records=records),)),))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()

    def best(fn) -> float:
        runs = timeit.repeat(fn, number=args.number, repeat=args.repeat)
        return min(runs) / args.number * 1e6

    m = BrokerMetrics()
    for batches, per in ((1, 1), (1, 160), (64, 160)):
        resp = _fetch_answer(batches, per)
        records = resp.topics[0].partitions[0].records
        print(f"Fetch answer of {batches} batch(es) x {per} records ({len(records)} B): "
              f"responded {best(lambda r=resp: m.responded(r)):.2f} us "
              f"(of which count_records {best(lambda b=records: count_records(b)):.2f} us)")
    s = MetricSources()
    print(f"acks=all produce, Produce purgatory in and out: "
          f"{best(lambda: s.delaying(lambda _r: None)(None)):.2f} us")
    progress = {2: N(match_index=90), 3: N(match_index=100)}
    node = N(state=N(role="leader", term=3, leader_id=1, progress=progress),
             log=N(last_index=100), commit_index=100)
    r = RaftStats()
    print(f"RaftStats.observe (leader of 3 voters), per Raft step: "
          f"{best(lambda: r.observe(node, 100)):.2f} us")

    def image(isr):
        return N(topics={"t": N(partitions={0: N(leader=1, leader_epoch=3, isr=isr)})})

    a, b = image((1, 2, 3)), image((1, 3))
    print(f"count_isr_changes, per changed partition of an image update: "
          f"{best(lambda: count_isr_changes(a, b, [('t', 0, None)], 1)):.2f} us")


if __name__ == "__main__":
    main()
