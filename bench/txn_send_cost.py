"""The application thread's cost of ``Producer.send()``, transactional next to plain
(bench/README.md, "Transactions"): records go into one batch that never leaves (linger.ms and
batch.size huge), so only ``send()`` itself is timed (``time.thread_time()``), alternating
plain and transactional producers; the minimum of the rounds is the figure to compare.

    .venv/bin/python bench/txn_send_cost.py 127.0.0.1:9092 TOPIC [ROUNDS]

Needs a running broker (the transactional producer's init_transactions() and one
AddPartitionsToTxn); each transaction is aborted and each producer closed without sending.
"""

from __future__ import annotations

import sys
import time

from rillet.producer import Producer

N = 200_000


def main() -> None:
    bootstrap, topic = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    payload = b"A" * 100
    best = {False: float("inf"), True: float("inf")}
    for r in range(rounds):
        for txn in (False, True):
            cfg = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 600_000,
                   "batch.size": 1 << 30, "buffer.memory": 1 << 31,
                   "max.request.size": 1 << 30}
            if txn:
                cfg["transactional.id"] = f"txn-send-cost-{r}"
            p = Producer(cfg)
            try:
                p.partitions_for(topic)
                if txn:
                    p.init_transactions()
                    p.begin_transaction()
                send = p.send
                t0 = time.thread_time()
                for _ in range(N):
                    send(topic, payload)
                ns = (time.thread_time() - t0) / N * 1e9
                if txn:
                    p.abort_transaction()
            finally:
                p.close(0)
            best[txn] = min(best[txn], ns)
            print(f"round {r} {'txn  ' if txn else 'plain'} send() {ns:.0f} ns/rec", flush=True)
    print(f"min: plain {best[False]:.0f} ns/rec, transactional {best[True]:.0f} ns/rec")


if __name__ == "__main__":
    main()
