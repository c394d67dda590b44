"""The share-state coordinator (actors/share_state.py) as partition leaders use it: writes
through the real ShareStateClient over the CURVE inter-broker listeners of a fresh local
cluster.

    .venv/bin/python bench/share_state_bench.py [BROKERS] [SHARE_PARTITIONS] [SECONDS]

BROKERS (default 3: ``__share_group_state`` RF=3, min ISR 2, 50 partitions);
SHARE_PARTITIONS (default 16) closed loops, each with ONE write in flight at a time, as a
partition leader keeps one per share-partition: each write acknowledges the next 500 offsets
and moves ``start_offset`` past them (the state stays a few ranges). Prints the latency of a
lone write (p50/p99 over 200) and, for the loops, writes/s and acknowledged records/s.
Figures in docs/queues.md, "Share-state coordinator".
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from rillet.actors.share_state_client import ShareStateClient
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.security import load_keyfile

from rillet.launcher import LocalCluster

E = P.ErrorCode
PER_WRITE = 500


def main() -> None:
    brokers = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    keys = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    with tempfile.TemporaryDirectory() as d, LocalCluster(Path(d), brokers, {}) as c:
        c.start(timeout_s=60)
        client_ep = ClientEndpoint()
        peers = ClientEndpoint(curve=load_keyfile(c.keyfile) if c.keyfile else None)
        found: dict[str, P.FindCoordinatorResponse] = {}

        def find(key: str) -> P.FindCoordinatorResponse:
            if key in found:
                return found[key]
            r = client_ep.request(c.address(1), P.FindCoordinatorRequest(key=key, key_type=2),
                                  5000).result(10)
            if r.error_code == E.NONE:
                found[key] = r
            return r

        def schedule(delay: float, fn) -> None:
            t = threading.Timer(delay, fn)
            t.daemon = True
            t.start()

        client = ShareStateClient(find, c.internal_address, peers.request, schedule,
                                  deadline_ms=60_000)

        def write(group: str, partition: int, start: int, done) -> None:
            client.write(P.WriteShareGroupStateRequest(
                group_id=group, topic="orders", partition=partition, state_epoch=0,
                leader_epoch=1, start_offset=start, state_batches=(P.ShareStateBatch(
                    first_offset=start, last_offset=start + PER_WRITE - 1,
                    delivery_state=P.RECORD_ACKNOWLEDGED, delivery_count=1),)), done)

        def write_sync(group: str, partition: int, start: int) -> float:
            answered: Future = Future()
            t0 = time.perf_counter()
            write(group, partition, start, answered.set_result)
            r = answered.result(60)
            assert r.error_code == E.NONE, r
            return time.perf_counter() - t0

        for p in range(keys):  # warm: topic created, coordinators loaded, connections open
            write_sync("bench", p, 0)
        lat = sorted(write_sync("bench", 0, PER_WRITE * (i + 1)) for i in range(200))
        print(f"{brokers} brokers: lone write p50 {statistics.median(lat) * 1000:.2f} ms, "
              f"p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.2f} ms")

        lock = threading.Lock()
        counts = [0] * keys
        stop_at = time.monotonic() + seconds
        finished = threading.Event()
        running = [keys]

        def loop(p: int, start: int) -> None:
            def done(r) -> None:
                assert r.error_code == E.NONE, r
                with lock:
                    counts[p] += 1
                if time.monotonic() < stop_at:
                    loop(p, start + PER_WRITE)
                else:
                    with lock:
                        running[0] -= 1
                        if running[0] == 0:
                            finished.set()

            write("loop", p, start, done)

        t0 = time.monotonic()
        for p in range(keys):
            loop(p, 0)
        finished.wait(seconds + 60)
        elapsed = time.monotonic() - t0
        total = sum(counts)
        print(f"{keys} share-partitions, one write in flight each: {total / elapsed:,.0f} "
              f"writes/s, {total * PER_WRITE / elapsed:,.0f} acknowledged records/s "
              f"({PER_WRITE} per write)")
        peers.close()
        client_ep.close()


if __name__ == "__main__":
    main()
