"""CPU per record of the fetch path's transcoding (rillet batch -> Kafka v2 batch), by shape:
``kafka_transcode.to_kafka_parts`` (no cache: every batch transcoded) against the general
record-by-record encoder it replaced for most batches (cbor2 columns +
``kafka_batch.encode_records`` + ``encode_batch``), in the same process.

    .venv/bin/python bench/kafka_transcode_bench.py [--records 150] [--batches 200]

Thread CPU time, best of 7 (the machine is shared). Shapes: the fixed shape the fast path
reads in place (dense, small timestamp deltas, null or one-length keys and values, no
headers), the columns path (lengths varying, deltas above 23, compacted offsets) and
headers (the general encoder on both sides).
"""

from __future__ import annotations

import argparse
import random
import time

import cbor2
from rillet.actors import kafka_transcode as T
from rillet.actors import kafka_transcode_fast as F
from rillet.logstore import batch as B


def _batch(offs, tds, keys, values, headers) -> bytes:
    n = len(tds)
    payload = cbor2.dumps([offs, tds, keys, values, headers])
    b = bytearray(B.encode_batch(payload=payload, attributes=0,
                                 last_offset_delta=n - 1 if offs is None else offs[-1],
                                 first_timestamp=1_700_000_000_000,
                                 max_timestamp=1_700_000_000_000 + max(tds), record_count=n))
    B.stamp(b, 0, 1000, 3)
    return bytes(b)


def _best(fn, batches: int, n: int) -> float:
    best = float("inf")
    for _ in range(7):
        start = time.thread_time()
        for _ in range(batches):
            fn()
        best = min(best, time.thread_time() - start)
    return best / (batches * n) * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=150)
    ap.add_argument("--batches", type=int, default=200)
    args = ap.parse_args()
    n, rnd = args.records, random.Random(0)
    nulls = [None] * n

    def values(size=100):
        return [rnd.randbytes(size) for _ in range(n)]

    small = sorted(rnd.randint(0, 20) for _ in range(n))
    shapes = [
        ("fixed: null keys, 100 B values, deltas 0", _batch(None, [0] * n, nulls, values(),
                                                            nulls)),
        ("fixed: null keys, 100 B values, deltas 0..20", _batch(None, small, nulls, values(),
                                                                nulls)),
        ("fixed: 16 B keys, 100 B values", _batch(None, small, values(16), values(), nulls)),
        ("columns: null keys, 50-150 B values", _batch(
            None, small, nulls, [rnd.randbytes(rnd.randint(50, 150)) for _ in range(n)],
            nulls)),
        ("columns: 100 B values, deltas 0..500", _batch(
            None, sorted(rnd.randint(0, 500) for _ in range(n)), nulls, values(), nulls)),
        ("columns: compacted (sparse offsets)", _batch(
            sorted(rnd.sample(range(3 * n), n)), small, values(16), values(), nulls)),
        ("headers: 2 per record (general encoder)", _batch(
            None, small, nulls, values(), [[["h", b"x"], ["trace", b"0123456789"]]] * n)),
    ]
    print(f"{n} records/batch; thread CPU ns per record, best of 7 x {args.batches} batches")
    print(f"  {'shape':<46} {'to_kafka':>9} {'general':>9} {'ratio':>6}")
    for name, stamped in shapes:
        assert b"".join(T.to_kafka_parts(stamped, None, None)) == b"".join(F.reference(stamped))
        new = _best(lambda s=stamped: T.to_kafka_parts(s, None, None), args.batches, n)
        old = _best(lambda s=stamped: F.reference(s), args.batches, n)
        print(f"  {name:<46} {new:9.0f} {old:9.0f} {old / new:6.2f}")


if __name__ == "__main__":
    main()
