"""State store throughput: puts, gets and count updates per second on the key-value store,
in memory and on SQLite, with changelogging on, next to a plain dict doing the same.

    python bench/streams_store_bench.py                 # 200,000 ops per phase
    python bench/streams_store_bench.py --ops 1000000 --keys 100000

Each phase runs through the typed store as a processor calls it (String keys, Long values,
serialized with struct, as serdes.py's Long), changelogging to a collector whose ``send``
only counts (the cost of the store's side, not of a producer), and commits every
``--commit-every`` ops (the SQLite store then commits its transaction with the checkpoint:
one fsync). Phases:

* ``put``: ``--ops`` puts over ``--keys`` distinct keys (the first ``--keys`` insert);
* ``get``: ``--ops`` gets of present keys;
* ``update``: ``--ops`` read-modify-writes (``put(k, get(k) + 1)``: a count);
* ``window``: ``--ops`` window-store updates over 60 one-second windows, expiring on stream
  time (a windowed count's store traffic).

The ``dict`` row does the update phase on a dict with the same serialization, the floor a
Python store cannot beat. Prints one line per phase and store, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rillet.streams import stores  # noqa: E402
from rillet.streams.api import StoreSpec, TaskId  # noqa: E402


class Str:
    @staticmethod
    def serialize(topic, data):
        return data.encode()

    @staticmethod
    def deserialize(topic, data):
        return data.decode()


class Long:
    _S = struct.Struct(">q")
    serialize = staticmethod(lambda topic, data, _p=_S.pack: _p(data))
    deserialize = staticmethod(lambda topic, data, _u=_S.unpack: _u(data)[0])


class CountingCollector:
    def __init__(self) -> None:
        self.n = 0

    def send(self, topic, key, value, timestamp, headers=(), partition=None) -> None:
        self.n += 1


CPU: dict[str, float] = {}


def rate(n: int, fn, label: str = "") -> float:
    """ops per wall-clock second; ops per CPU second of this process go to CPU[label] (on
    a shared machine the CPU rate is the steadier one; the difference is waiting: fsync,
    other processes)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if label:
        CPU[label] = n / cpu
    return n / wall


def bench_kv(kind: str, ops: int, keys: list[str], commit_every: int, task_dir: str) -> dict:
    spec = StoreSpec("counts", "kv", Str(), Long(), in_memory=kind == "memory")
    store = stores.build(spec, TaskId(0, 0))
    store.open(task_dir, CountingCollector(), ("bench-counts-changelog", 0),
               timestamp_source=lambda: 0)
    nkeys = len(keys)
    sequence = [keys[i % nkeys] for i in range(ops)]

    def chunks(body):
        for lo in range(0, ops, commit_every):
            body(sequence[lo:lo + commit_every])
            store.commit(lo)

    put, get = store.put, store.get

    def puts(batch):
        for k in batch:
            put(k, 1)

    def gets(batch):
        for k in batch:
            get(k)

    def updates(batch):
        for k in batch:
            put(k, get(k) + 1)

    out = {"put": rate(ops, lambda: chunks(puts), f"{kind} put"),
           "get": rate(ops, lambda: chunks(gets), f"{kind} get"),
           "update": rate(ops, lambda: chunks(updates), f"{kind} update")}
    store.close()
    return out


def bench_window(kind: str, ops: int, keys: list[str], commit_every: int,
                 task_dir: str) -> float:
    spec = StoreSpec("win", "window", Str(), Long(), retention_ms=60_000,
                     window_size_ms=1000, in_memory=kind == "memory")
    store = stores.build(spec, TaskId(0, 0))
    store.open(task_dir, CountingCollector(), ("bench-win-changelog", 0),
               timestamp_source=lambda: 0)
    nkeys = len(keys)
    fetch, put, expire = store.fetch, store.put, store.expire

    def run():
        for lo in range(0, ops, commit_every):
            for i in range(lo, min(ops, lo + commit_every)):
                ts = i * 10  # 100 records per second of event time
                start = ts - ts % 1000
                k = keys[i % nkeys]
                put(k, (fetch(k, start) or 0) + 1, start)
                expire(ts)
            store.commit(lo)

    r = rate(ops, run, f"{kind} window")
    store.close()
    return r


def bench_dict(ops: int, keys: list[str]) -> float:
    d: dict[bytes, bytes] = {}
    ser, de = Long.serialize, Long.deserialize
    nkeys = len(keys)
    for k in keys:
        d[k.encode()] = ser("t", 0)

    def run():
        for i in range(ops):
            kb = keys[i % nkeys].encode()
            d[kb] = ser("t", de("t", d[kb]) + 1)

    return rate(ops, run, "dict update")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--commit-every", type=int, default=10_000)
    args = ap.parse_args()
    keys = [f"key-{i}" for i in range(args.keys)]
    result: dict = {"ops": args.ops, "keys": args.keys, "commit_every": args.commit_every,
                    "load_average": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="rillet-store-bench-") as tmp:
        for kind in ("memory", "sqlite"):
            task_dir = os.path.join(tmp, kind)
            kv = bench_kv(kind, args.ops, keys, args.commit_every, task_dir)
            kv["window"] = bench_window(kind, args.ops, keys, args.commit_every, task_dir)
            for phase, r in kv.items():
                cpu = CPU[f"{kind} {phase}"]
                print(f"{kind:7s} {phase:7s} {r:12,.0f} ops/s  ({cpu:12,.0f} per CPU second)")
            result[kind] = {k: round(v) for k, v in kv.items()}
    d = bench_dict(args.ops, keys)
    print(f"dict    update  {d:12,.0f} ops/s  ({CPU['dict update']:12,.0f} per CPU second)")
    result["dict_update"] = round(d)
    result["per_cpu_second"] = {k: round(v) for k, v in CPU.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
