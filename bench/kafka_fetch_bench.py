"""The broker's CPU per record to build a Kafka Fetch answer: this checkout against a git ref
(A/B in one process, alternating, best of N; CPU time, so a loaded machine only adds noise).

One answer = one partition's ~1 MiB of records as the partition actor hands them over
(``--batches`` rillet batches of ``--records`` records of 100 B, null keys: what
``rillet perf produce`` writes), turned into the Kafka FetchResponse frame the listener
sends: the batches transcoded (``cold``: nothing remembered) or served from the
recent-batches cache (``warm``: a tailing consumer, or the records of a Kafka producer),
then kio's encoding and the frame. The ref's ``actors/kafka_transcode.py`` and
``actors/kafka_wire.py`` are loaded from git beside this checkout's.

    .venv/bin/python bench/kafka_fetch_bench.py [--ref 44383d8] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import types
from pathlib import Path

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from rillet.actors import kafka_transcode as T
from rillet.actors import kafka_wire as W
from rillet.actors.kafka_metadata import build
from rillet.logstore import batch as B
from rillet.logstore import batch_fast as F

ROOT = Path(__file__).resolve().parent.parent


def _module_at(ref: str, path: str, name: str) -> types.ModuleType:
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType(f"rillet.actors._{name}_at_ref")
    module.__package__ = "rillet.actors"
    sys.modules[module.__name__] = module
    exec(compile(source, f"{ref}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own code
    return module


def _records(batches: int, per_batch: int) -> bytes:
    now, out, offset = 1_700_000_000_000, [], 0
    for _ in range(batches):
        b = bytearray(F.encode_dense([now] * per_batch, [None] * per_batch,
                                     [os.urandom(100) for _ in range(per_batch)], None,
                                     keyed=False))
        B.stamp(b, 0, offset, 0)
        offset += per_batch
        out.append(bytes(b))
    return b"".join(out)


def _answer(version: int, records) -> object:
    cls = load_response_schema(1, version)
    mod = __import__(cls.__module__, fromlist=["PartitionData"])
    part = build(mod.PartitionData, partition_index=0, error_code=ErrorCode.none, high_watermark=1,
                 last_stable_offset=1, log_start_offset=0, aborted_transactions=None,
                 records=records)
    return build(cls, throttle_time=T_ZERO, error_code=ErrorCode.none, session_id=0, responses=(
        build(mod.FetchableTopicResponse, topic="t", topic_id="t", partitions=(part,)),))


def main() -> None:
    global T_ZERO
    from datetime import timedelta

    from kio.static.primitive import i32Timedelta

    T_ZERO = i32Timedelta.parse(timedelta(0))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", default="44383d8")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--records", type=int, default=140)
    ap.add_argument("--version", type=int, default=12, help="Fetch version (12: librdkafka's)")
    args = ap.parse_args()
    base_t = _module_at(args.ref, "actors/kafka_transcode.py", "kafka_transcode")
    base_w = _module_at(args.ref, "actors/kafka_wire.py", "kafka_wire")
    records = _records(args.batches, args.records)
    n = args.batches * args.records

    def base(recent):
        return base_w.encode_response(1, _answer(args.version, base_t.to_kafka(records, recent)))

    def new(recent):
        return W.encode_response(1, _answer(args.version, W.Chunks(T.to_kafka_parts(records,
                                                                                    recent))))

    warm_base, warm_new = base_t.RecentBatches(1 << 30), T.RecentBatches(1 << 30)
    assert base(warm_base) == new(warm_new) == base(None) == new(None)  # same bytes out
    cases = {("cold", "ref"): lambda: base(None), ("cold", "new"): lambda: new(None),
             ("warm", "ref"): lambda: base(warm_base), ("warm", "new"): lambda: new(warm_new)}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):  # alternating, so load changes hit both sides alike
        for key, fn in cases.items():
            start = time.process_time()
            for _ in range(5):
                fn()
            best[key] = min(best[key], (time.process_time() - start) / (5 * n) * 1e6)
    print(f"Fetch v{args.version} answer of {n:,} records ({len(records):,} B), CPU us/record, "
          f"best of {args.rounds}, load {os.getloadavg()[0]:.1f}:")
    for kind in ("cold", "warm"):
        ref, mine = best[(kind, "ref")], best[(kind, "new")]
        print(f"  {kind}: {args.ref} {ref:.3f}   this checkout {mine:.3f}   ({ref / mine:.2f}x)")


if __name__ == "__main__":
    main()
