"""What the leader's rewrites cost per record (logstore/rewrite.py): a topic's
``message.timestamp.type=LogAppendTime`` (stamp + digest again) and ``compression.type``
(decompress, compress, digest again), against the plain append (``producer``/CreateTime: the
batch is written as sent).

    .venv/bin/python bench/recompress_bench.py [--records 500] [--batches 100] [--rounds 7]

Each case appends ``--batches`` batches of ``--records`` records (a 10-byte key, a 100-byte
value of JSON-like text with a random hex id: it compresses about 2:1) through ``validator.append_validated`` into an in-memory
log (logstore/memfs.py: no disk), the path a produce takes on the leader. The cases are run
in alternating rounds (the machine is shared: the best round of each counts, CPU time of this
process, ``time.process_time``). Prints CPU microseconds per record, the stored bytes per
record, and the extra CPU over the plain append.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from rillet.logstore.batch import BatchBuilder, Codec
from rillet.logstore.config import LogConfig
from rillet.logstore.log import PartitionLog
from rillet.logstore.memfs import MemFileSystem
from rillet.logstore.producer_state import ProducerStateManager
from rillet.logstore.validator import append_validated

NOW = 1_700_000_000_000

# (name, the producer's codec, the topic's configs)
CASES = [
    ("plain (producer, CreateTime)", Codec.NONE, {}),
    ("LogAppendTime", Codec.NONE, {"message_timestamp_type": "LogAppendTime"}),
    ("none -> zstd", Codec.NONE, {"compression_type": "zstd"}),
    ("none -> lz4", Codec.NONE, {"compression_type": "lz4"}),
    ("none -> snappy", Codec.NONE, {"compression_type": "snappy"}),
    ("none -> gzip", Codec.NONE, {"compression_type": "gzip"}),
    ("gzip -> zstd", Codec.GZIP, {"compression_type": "zstd"}),
    ("zstd -> uncompressed", Codec.ZSTD, {"compression_type": "uncompressed"}),
    ("none -> zstd + LogAppendTime", Codec.NONE,
     {"compression_type": "zstd", "message_timestamp_type": "LogAppendTime"}),
]


def _batch(codec: Codec, n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    b = BatchBuilder(codec)
    for i in range(n):
        value = b'{"order": %d, "item": "widget-%d", "qty": %d, "id": "%s"}' % (
            seed * n + i, rng.randrange(1000), rng.randrange(20),
            rng.randbytes(24).hex().encode())
        b.append(NOW + i // 100, b"key-%06d" % rng.randrange(10**6), value[:100].ljust(100))
    return b.build()


def _round(codec_batches: list[bytes], configs: dict) -> tuple[float, int]:
    log = PartitionLog.open(Path("/bench/t-0"), LogConfig(segment_bytes=1 << 30, **configs),
                            NOW, fs=MemFileSystem())
    ps = ProducerStateManager()
    start = time.process_time()
    for i, batch in enumerate(codec_batches):
        r = append_validated(log, ps, batch, 0, NOW + i)
        assert r.error == "NONE", r
    spent = time.process_time() - start
    size = log.size_in_bytes
    log.close()
    return spent, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=500)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    batches = {c: [_batch(c, args.records, s) for s in range(args.batches)]
               for c in {codec for _, codec, _ in CASES}}
    best = {name: float("inf") for name, _, _ in CASES}
    sizes = {}
    for _ in range(args.rounds):  # alternating: each round runs every case once
        for name, codec, configs in CASES:
            spent, size = _round(batches[codec], configs)
            best[name] = min(best[name], spent)
            sizes[name] = size
    n = args.records * args.batches
    base = best[CASES[0][0]] / n * 1e6
    print(f"{n} records per case, {args.records} per batch, best of {args.rounds} rounds")
    print(f"{'case':32} {'us/record':>10} {'extra':>8} {'bytes/record':>13}")
    for name, _, _ in CASES:
        us = best[name] / n * 1e6
        print(f"{name:32} {us:10.2f} {us - base:+8.2f} {sizes[name] / n:13.1f}")


if __name__ == "__main__":
    main()
