"""CPU per record of the clients' batch fast paths (logstore/batch_fast.py), in-process.

    .venv/bin/python bench/batch_fast_bench.py [--reps 9]

produce: ``ProducerBatch.append`` of 150 records of 100 bytes (no key, no headers, the
producer's usual batch at the default batch.size) and ``seal`` (``batch_fast.encode_dense``),
300 batches. consume: the consumer's per-batch work before records are built: framing
(``scan_batches``), the digest (``digest_at``) and the columns (``decode_columns_at``) over
the same 300 batches stamped into one fetched run. Thread CPU time, min and median over the
repetitions (on a shared machine the min is the figure to compare).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from rillet.logstore.batch import HEADER_SIZE, Codec, digest_at, stamp
from rillet.logstore.batch_fast import decode_columns_at, scan_batches

from rillet._accumulator import ProducerBatch

BATCHES, PER = 300, 150
VALUE = b"x" * 100


def produce() -> list[bytes]:
    out = []
    for b in range(BATCHES):
        batch = ProducerBatch("t", 0, Codec.NONE, 0)
        for i in range(PER):
            batch.append(1_700_000_000_000 + b + i // 100, None, VALUE)
        out.append(batch.seal())
    return out


def consume(log: bytes) -> int:
    mv = memoryview(log)
    batches, _ = scan_batches(log, 0, True, digests=False)
    n = 0
    for _base, _attrs, _first, _last, count, start, end, digest in batches:
        if digest_at(mv, start, end) != digest:
            raise SystemExit("digest mismatch")
        n += len(decode_columns_at(log, start + HEADER_SIZE, end, count)[2])
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    args = ap.parse_args()
    enc, dec = [], []
    for _ in range(args.reps):
        gc.collect()
        t = time.thread_time()
        batches = produce()
        enc.append(time.thread_time() - t)
        log = bytearray()
        for i, data in enumerate(batches):
            data = bytearray(data)
            stamp(data, 0, i * PER, 0)
            log += data
        log = bytes(log)
        t = time.thread_time()
        for _ in range(5):
            assert consume(log) == BATCHES * PER
        dec.append((time.thread_time() - t) / 5)
    n = BATCHES * PER
    print(f"produce append+seal: min {min(enc) / n * 1e9:.0f} ns/record, "
          f"median {statistics.median(enc) / n * 1e9:.0f}")
    print(f"consume frame+digest+columns: min {min(dec) / n * 1e9:.1f} ns/record, "
          f"median {statistics.median(dec) / n * 1e9:.1f}")


if __name__ == "__main__":
    main()
