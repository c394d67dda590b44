"""Kafka record batches v2 at the edge vs in the log: what each choice costs per record.

Transcoding at the KAFKA listener (what rillet does, actors/kafka_transcode.py) costs
the broker ``to_rillet`` per produced record and ``to_kafka`` per fetched record, on the
Kafka path only. Storing Kafka's v2 batches natively instead would let the broker pass
Kafka clients' bytes through (a CRC-32C check on append), but every native producer would
then encode v2 records in Python instead of CBOR columns, every native consumer decode them,
and the log store (validation, compaction, transactions, recovery) would move to v2.

    .venv/bin/python bench/kafka_batch_bench.py [--records 1000] [--batches 200]

Prints CPU microseconds per record for each step (process time, best of 7 runs: the
machine is shared), for batches of ``--records`` records of a 10-byte key and a 100-byte value.
"""

from __future__ import annotations

import argparse
import time

from rillet.actors import kafka_batch as KB
from rillet.actors import kafka_transcode as T
from rillet.logstore import batch as B
from rillet.logstore import batch_fast as F


def _best(fn, n_batches: int, per_batch: int) -> float:
    best = float("inf")
    for _ in range(7):
        start = time.process_time()
        for _ in range(n_batches):
            fn()
        best = min(best, time.process_time() - start)
    return best / (n_batches * per_batch) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()
    n = args.records
    now = 1_700_000_000_000
    keys = [b"key-%06d" % i for i in range(n)]
    values = [bytes(100) for _ in range(n)]
    stamps = [now + i // 100 for i in range(n)]
    deltas = [t - now for t in stamps]
    headers = [None] * n

    rillet = F.encode_dense(stamps, keys, values, None)
    stamped = bytearray(rillet)
    B.stamp(stamped, 0, 0, 0)
    stamped = bytes(stamped)
    kafka = KB.encode_batch(records=KB.encode_records(None, deltas, keys, values, headers),
                            record_count=n, last_offset_delta=n - 1, base_timestamp=now,
                            max_timestamp=stamps[-1])
    import crc32c

    rows = [
        ("edge: Kafka produce -> rillet batch (to_rillet)", lambda: T.to_rillet(kafka)),
        ("edge: rillet batch -> Kafka fetch (to_kafka)", lambda: T.to_kafka(stamped)),
        ("native producer: encode rillet batch (encode_dense)",
         lambda: F.encode_dense(stamps, keys, values, None)),
        ("native producer: encode v2 batch (if the log stored v2)",
         lambda: KB.encode_batch(records=KB.encode_records(None, deltas, keys, values, headers),
                                 record_count=n, last_offset_delta=n - 1,
                                 base_timestamp=now, max_timestamp=stamps[-1])),
        ("native consumer: decode rillet batch (decode_columns)",
         lambda: B.decode_columns(stamped, validate=False)),
        ("native consumer: decode v2 batch (if the log stored v2)",
         lambda: KB.decode_batches(kafka)),
        ("broker append check: rillet (blake3 digest, validate)", lambda: B.validate(rillet)),
        ("broker append check: v2 (CRC-32C only)", lambda: crc32c.crc32c(kafka[21:])),
    ]
    print(f"{n} records/batch, 10 B keys, 100 B values; CPU microseconds per record "
          f"(best of 7 x {args.batches} batches)")
    for name, fn in rows:
        print(f"  {name:<58} {_best(fn, args.batches, n):7.3f}")


if __name__ == "__main__":
    main()
