"""The share-partition core's acquire + acknowledge rate (coordinator/share/partition.py),
without I/O: what one partition leader's state machine costs per record.

    .venv/bin/python bench/share_partition_bench.py [--records 1000000] [--batch 500]

Scenarios (4 members taking turns, ``max_records`` = --batch, 2000 in-flight locks):
- ``accept``: every acquired range accepted as a whole (the common case: one range per ack);
- ``mixed``: each batch acknowledged per offset, 1% released (delay 0) and 0.1% rejected, so
  ranges split and merge (redeliveries included);
- ``per-record``: every record acknowledged in its own AcknowledgementBatch (a client that
  does not coalesce: the worst case);
plus the persisted form (``to_state``) taken after every acknowledgement, as the leader's
group commit does at most once per write.
"""

from __future__ import annotations

import argparse
import time

from rillet.coordinator.share.partition import (
    ACK_ACCEPT,
    ACK_REJECT,
    ACK_RELEASE,
    Ack,
    SharePartition,
    SharePartitionConfig,
)

MEMBERS = ("m1", "m2", "m3", "m4")


def run(records: int, batch: int, mode: str, snapshot: bool) -> float:
    config = SharePartitionConfig(dead_letter_topic="t.dlq")
    sp = SharePartition("g", "t", 0, config, 0)
    hw = records
    done = 0
    now = 0
    turn = 0
    start = time.perf_counter()
    while sp.start_offset < hw:
        member = MEMBERS[turn % len(MEMBERS)]
        turn += 1
        now += 1
        got = sp.acquire(member, hw, batch, now)
        if not got:
            dead = sp.dead_letter_pending()
            for d in dead:
                sp.dead_lettered(d.first_offset, d.last_offset)
            if not dead:
                raise RuntimeError(f"stuck at {sp.start_offset}")
            continue
        acks = []
        for a in got:
            n = a.last_offset - a.first_offset + 1
            done += n
            if mode == "accept":
                acks.append(Ack(a.first_offset, a.last_offset, (ACK_ACCEPT,)))
            elif mode == "per-record":
                acks.extend(Ack(o, o, (ACK_ACCEPT,)) for o in range(a.first_offset,
                                                                    a.last_offset + 1))
            else:
                types = tuple(
                    ACK_REJECT if o % 1000 == 7 else
                    ACK_RELEASE if o % 100 == 3 and a.delivery_count == 1 else ACK_ACCEPT
                    for o in range(a.first_offset, a.last_offset + 1))
                acks.append(Ack(a.first_offset, a.last_offset, types, delay_ms=0))
        changes = sp.acknowledge(member, acks, now, 0.5)
        for d in changes.dead_letters:
            sp.dead_lettered(d.first_offset, d.last_offset)
        if snapshot:
            sp.to_state()
    elapsed = time.perf_counter() - start
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    for mode in ("accept", "mixed", "per-record"):
        for snapshot in (False, True):
            n = args.records if mode != "per-record" else args.records // 4
            rate = run(n, args.batch, mode, snapshot)
            label = f"{mode}{' + to_state' if snapshot else ''}"
            print(f"{label:24} {rate / 1000:10.0f}k records/s (acquired + acknowledged)")


if __name__ == "__main__":
    main()
