"""The log store's own share of a spread produce: what one small batch costs the partition
log, per replica, next to what it costs the broker in all (issue #12).

A spread produce over 3,000 partitions reaches each leader as ~9-record batches (about
23,000 partition batches for 200,000 records, ``spread_profile.py``). Here the same shapes
run through the log store alone, in this process, with no actors, sockets or replication
bookkeeping: P partition logs in a temporary directory (on the same filesystem as a broker's
data, with the broker's group-synced flush installed), and for each

* the first append of a 9-record batch (a new leader epoch: its file is written),
* steady leader appends (``append_validated``: framing, digest, producer state, the write),
* the follower's ``append_replicated`` of the leader's batches into a second log, one
  fetched batch per call (its first append untimed),
* a read of the batch back (what a follower's fetch does on the leader),
* one flush per written log (the interval flush's turn: a syncfs barrier each, one at a time
  here, where a broker's eight io threads share a syncfs among up to eight).

Printed: microseconds per call of each, and per record for the leader and follower appends,
next to the same 100-byte records as 16 KiB batches on 3 partitions (the "three" topic's
shape), and the log work of one spread batch on its three replicas. Compare that with the
broker CPU per partition batch that ``spread_profile.py`` measures (broker CPU summed over
the three brokers / partition batches): what is not here is the actors, the requests, the
replication around the log and the collector.

    .venv/bin/python bench/spread_logstore.py [--partitions 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rillet.actors import group_sync
from rillet.logstore import producer_state as PS
from rillet.logstore.batch import BatchBuilder
from rillet.logstore.log import LogConfig, PartitionLog
from rillet.logstore.validator import append_validated


def batch(records: int, key: bytes, value: bytes) -> bytes:
    b = BatchBuilder()
    for j in range(records):
        b.append(1_000 + j, key, value)
    return b.build()


def per_call(fn, calls: int) -> float:
    """Microseconds per call of ``fn(i)`` for i in range(calls)."""
    t = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - t) / calls * 1e6


def shape(root: Path, partitions: int, records: int, rounds: int) -> dict[str, float]:
    value = os.urandom(100)
    leaders = [PartitionLog.open(root / f"l-{i}", LogConfig(), 0) for i in range(partitions)]
    followers = [PartitionLog.open(root / f"f-{i}", LogConfig(), 0) for i in range(partitions)]
    states = [PS.ProducerStateManager(0) for _ in range(partitions)]
    batches = [batch(records, str(i).encode(), value) for i in range(partitions)]
    out = {"first_append_us": per_call(
        lambda i: append_validated(leaders[i], states[i], batches[i], 0, 1_000), partitions)}
    steady = []
    for _ in range(rounds):
        steady.append(per_call(
            lambda i: append_validated(leaders[i], states[i], batches[i], 0, 1_000), partitions))
    out["leader_append_us"] = min(steady)
    # the follower gets the leader's batches one fetch each: the first (a new epoch for it
    # too) untimed, then the steady ones, timed as the leader's were
    for i in range(partitions):
        followers[i].append_replicated(leaders[i].read(0, len(batches[i])), 1_000)
    steady = []
    for r in range(1, rounds + 1):
        fetched = [leaders[i].read(r * records, len(batches[i])) for i in range(partitions)]
        steady.append(per_call(
            lambda i, fetched=fetched: followers[i].append_replicated(fetched[i], 1_000),
            partitions))
    out["follower_append_us"] = min(steady)
    out["read_us"] = per_call(lambda i: leaders[i].read(0, 1 << 20), partitions)
    out["flush_us"] = per_call(lambda i: leaders[i].flush(), partitions)
    for log in leaders + followers:
        log.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=3000)
    ap.add_argument("--records", type=int, default=9, help="records per spread batch")
    ap.add_argument("--rounds", type=int, default=3, help="steady append rounds (best kept)")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    args = ap.parse_args()
    group_sync.install()
    with tempfile.TemporaryDirectory(prefix="rillet-spread-log-", dir=args.dir) as tmp:
        spread = shape(Path(tmp) / "spread", args.partitions, args.records, args.rounds)
        three = shape(Path(tmp) / "three", 3, 130, args.rounds)  # ~16 KiB batches
    print(f"{'per call (us)':22} {'spread':>10} {'three':>10}")
    for k in spread:
        print(f"{k:22} {spread[k]:10.1f} {three[k]:10.1f}")
    for k in ("leader_append_us", "follower_append_us"):
        print(f"{k[:-3] + ' per record (us)':32} {spread[k] / args.records:8.2f} "
              f"{three[k] / 130:8.2f}")
    per_batch = spread["leader_append_us"] + 2 * (
        spread["follower_append_us"] + spread["read_us"])
    print(f"one spread batch on three replicas (leader append, 2 x (read + follower "
          f"append)): {per_batch:.0f} us; the flushes come on top, once per written replica "
          f"per flush.ms, not per batch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
