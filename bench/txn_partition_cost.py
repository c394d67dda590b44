"""What the transaction wiring costs everyone else (docs/transactions.md, "Partition wiring"):
``PartitionReplica._append`` of N idempotent, non-transactional batches of 10 x 100-byte
records, then N read_uncommitted consumer reads, called directly (no mailbox, no sockets),
per call. Run it under two checkouts' venvs and compare the best of several runs:

    .venv/bin/python bench/txn_partition_cost.py 20000
"""

import sys
import tempfile
import time
from pathlib import Path

from rillet.actors import partition as R
from rillet.logstore.batch import BatchBuilder
from rillet.logstore.config import LogConfig

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
with tempfile.TemporaryDirectory() as d:
    rep = R.PartitionReplica("t", 0, Path(d) / "t-0", LogConfig(), 0, 1, "id")
    rep.on_start()
    batches = []
    now = int(time.time() * 1000)
    for i in range(N):
        b = BatchBuilder(producer_id=1, producer_epoch=0, base_sequence=i * 10)
        for _ in range(10):
            b.append(now, None, b"x" * 100)
        batches.append(b.build())
    out = []
    t0 = time.perf_counter()
    for data in batches:
        rep._append(R.Append(data, out.append, 1))
    t1 = time.perf_counter()
    assert all(r.error_code == 0 for r in out), out[:3]
    reads = []
    t2 = time.perf_counter()
    for i in range(N):
        rep._read(R.Read(i * 10, 1 << 16, reads.append, None))
    t3 = time.perf_counter()
    assert all(r.error_code == 0 for r in reads)
    rep.on_stop()
    print(f"append {(t1 - t0) / N * 1e6:.2f} us/batch  read {(t3 - t2) / N * 1e6:.2f} us/fetch")
