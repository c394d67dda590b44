"""Consumer-group rebalance latency with the broker's default heartbeat interval (5 s).

One round = a fresh cluster in a temp dir (default broker configs: heartbeat interval 5 s,
session timeout 45 s), a topic of ``--partitions`` partitions, then:

* join: ``--members`` consumers (each its own connections and heartbeat thread, polled by its
  own thread; tests/integration/group_members.py) subscribe one after another; measured from
  the last subscribe() to the moment every member holds its fair share and every partition
  is held by exactly one member (as seen by the members' own ``assignment()``);
* leave: one member close()s; measured from the start of close() to the moment the others
  hold every partition again (balanced over the remaining members).

__consumer_offsets is created (and its coordinator loaded) by a warm-up member first, so the
join time does not include topic creation.

    .venv/bin/python bench/group_rebalance_bench.py --members 20 --partitions 60 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rillet.admin import Admin  # noqa: E402
from rillet.launcher import LocalCluster  # noqa: E402
from rillet.records import NewTopic  # noqa: E402
from tests.integration.group_members import Members  # noqa: E402
from tests.support import wait_until  # noqa: E402


def seen_at(condition, timeout_s: float) -> float:
    """The monotonic time ``condition`` was first seen true (polled every 5 ms)."""
    wait_until(condition, timeout_s, "a balanced group", interval_s=0.005)
    return time.monotonic()


def one_round(brokers: int, members: int, partitions: int, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="rillet-group-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=brokers)
        cluster.start()
        try:
            bs = cluster.bootstrap_servers
            with Admin({"bootstrap.servers": bs}) as admin:
                admin.create_topics([NewTopic("t", partitions, min(brokers, 3))])
            warm = Members(bs, "warm-up", "t")
            warm.join("w")
            seen_at(lambda: warm.balanced(partitions), timeout_s)
            warm.close()

            group = Members(bs, "g", "t")
            try:
                for i in range(members):
                    group.join(f"m{i}")
                last_join = time.monotonic()
                joined = seen_at(lambda: group.balanced(partitions), timeout_s)
                group.check()
                start = time.monotonic()
                group.leave("m0")
                left = seen_at(lambda: group.balanced(partitions), timeout_s)
                group.check()
            finally:
                group.close()
            return {"join_s": joined - last_join, "leave_s": left - start,
                    "load": os.getloadavg()[0]}
        finally:
            cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", type=int, default=1)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    rows = []
    print(f"{args.brokers} broker(s), {args.members} members, {args.partitions} partitions, "
          "default heartbeat interval (5 s)")
    print("| round | join: all hold their target (s) | leave: partitions moved (s) | load1 |")
    print("|---|---|---|---|")
    for r in range(1, args.rounds + 1):
        row = one_round(args.brokers, args.members, args.partitions, args.timeout)
        rows.append(row)
        print(f"| {r} | {row['join_s']:.3f} | {row['leave_s']:.3f} | {row['load']:.2f} |",
              flush=True)
    print(f"| median | {statistics.median(x['join_s'] for x in rows):.3f} | "
          f"{statistics.median(x['leave_s'] for x in rows):.3f} | |")


if __name__ == "__main__":
    main()
