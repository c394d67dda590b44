"""Latency of the transaction coordinator's requests (actors/txn_coordinator.py) on a fresh
local cluster, raw wire, one request at a time:

    .venv/bin/python bench/txn_coordinator_bench.py [PARTITIONS] [BROKERS]

PARTITIONS: transaction.state.log.num.partitions (default 50); BROKERS (default 1; with 3 the
topic is RF=3, min ISR 2). For 200 transactional ids: InitProducerId (a new id: one acks=all
append), three AddPartitionsToTxn (one append each), one verify_only (no append). Figures in
docs/transactions.md, "Coordinator actor". The commit path needs the partition side's
WriteTxnMarkers and is not measured here.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from rillet.launcher import LocalCluster

E = P.ErrorCode
IDS = 200


def quantiles(xs: list[float]) -> str:
    p99 = sorted(xs)[int(len(xs) * 0.99) - 1]
    return f"p50 {statistics.median(xs) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def main() -> None:
    parts = sys.argv[1] if len(sys.argv) > 1 else "50"
    brokers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    configs = {"transaction.state.log.num.partitions": parts}
    with tempfile.TemporaryDirectory() as d, LocalCluster(Path(d), brokers, configs) as c:
        c.start(timeout_s=60)
        endpoint = ClientEndpoint()

        def call(broker: int, request):
            return endpoint.request(c.address(broker), request, 10_000).result(15)

        def coordinator(tid: str) -> int:
            while True:
                r = call(1, P.FindCoordinatorRequest(key=tid, key_type=1))
                if r.error_code == E.NONE:
                    return r.node_id
                time.sleep(0.01)

        def timed(broker: int, request):
            while True:
                start = time.perf_counter()
                r = call(broker, request)
                elapsed = time.perf_counter() - start
                if r.error_code == E.NONE:
                    return r, elapsed
                assert r.error_code in (E.COORDINATOR_LOAD_IN_PROGRESS,
                                        E.COORDINATOR_NOT_AVAILABLE), r
                time.sleep(0.005)

        topic = P.CreatableTopic(name="t", num_partitions=64,
                                 replication_factor=min(3, brokers))
        call(1, P.CreateTopicsRequest(topics=(topic,)))
        t0 = time.monotonic()
        timed(coordinator("first"), P.InitProducerIdRequest(transactional_id="first"))
        first = time.monotonic() - t0
        inits, adds, verifies = [], [], []
        for i in range(IDS):
            tid = f"tid-{i}"
            broker = coordinator(tid)
            r, dt = timed(broker, P.InitProducerIdRequest(transactional_id=tid))
            inits.append(dt)
            for p in range(3):
                _, dt = timed(broker, P.AddPartitionsToTxnRequest(
                    transactional_id=tid, producer_id=r.producer_id,
                    producer_epoch=r.producer_epoch,
                    topics=(P.TxnTopic(name="t", partitions=(p,)),)))
                adds.append(dt)
            _, dt = timed(broker, P.AddPartitionsToTxnRequest(
                transactional_id=tid, producer_id=r.producer_id, producer_epoch=r.producer_epoch,
                topics=(P.TxnTopic(name="t", partitions=(0,)),), verify_only=True))
            verifies.append(dt)
        endpoint.close()
    print(f"brokers={brokers} partitions={parts}: first FindCoordinator to the first "
          f"InitProducerId answered: {first:.2f} s")
    print("InitProducerId (new id, one acks=all append):", quantiles(inits))
    print("AddPartitionsToTxn (one acks=all append):", quantiles(adds))
    print("AddPartitionsToTxn verify_only (no append):", quantiles(verifies))


if __name__ == "__main__":
    main()
