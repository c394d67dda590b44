"""rillet.streams throughput (issue #16's benchmark), one instance, one broker, in one run:

* stateless: each line split into words, each word upper-cased and written out (a
  ``flat_map_values`` + ``map_values`` + ``to``);
* word count: the same split, grouped by word (a repartition topic), counted in the SQLite
  store, each new count written out;
* windowed count: records keyed by one of 1,000 customers, counted per customer per
  1-minute tumbling window (event time from the record timestamps), each window's count
  written out (the latest per commit: the record cache);

each next to a plain Consumer + Producer loop doing the same transform in the same process
(a dict for the counts, no changelog, no repartition), and the streams runs under
at_least_once and exactly_once_v2. Rates are input records per second, from the app's start
(including group join and internal-topic creation) until the output is complete (the
stateless pipeline: every record; the counts: every key's latest count equal to the truth,
the runs committing every second under at_least_once). The input is produced once, before
the timed runs. Each row also gives the process CPU per input record (the app's threads,
or the plain loop, plus the bench's reader), the brokers' CPU per input record (read from
/proc: the bench's own cluster only) and the 1-minute
load average when the run ended; the last line, how long the whole bench took (at the
defaults, 1,000,000 lines and records, both guarantees: 6-10 minutes at load 2-5 on the
2-core machine).

    .venv/bin/python bench/streams_bench.py --lines 1000000 --records 1000000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet.launcher import LocalCluster
from rillet.streams import App, serdes

VOCAB = [f"word{i}" for i in range(1000)]
MINUTE = 60_000


def lines(n: int) -> list[bytes]:
    return [f"{VOCAB[i % 1000]} {VOCAB[(i * 7) % 1000]} {VOCAB[(i * 13) % 1000]}".encode()
            for i in range(n)]


def produce(b: str, topic: str, values: list[bytes], keys: list[bytes] | None = None,
            timestamps: list[int] | None = None) -> None:
    with Producer({"bootstrap.servers": b, "linger.ms": 20, "batch.size": 262144}) as p:
        for i, v in enumerate(values):
            p.send(topic, v, keys[i] if keys else None,
                   timestamp_ms=timestamps[i] if timestamps else None)
        p.flush()


def end_total(b: str, topic: str, partitions: int) -> int:
    with Consumer({"bootstrap.servers": b}) as c:
        ends = c.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    return sum(ends.values())


def wait_output(b: str, topic: str, partitions: int, expected: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while end_total(b, topic, partitions) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{topic}: {end_total(b, topic, partitions)} of {expected} "
                               f"records after {timeout_s} s")
        time.sleep(0.2)


def wait_latest(b: str, topic: str, partitions: int, truth: Counter,
                timeout_s: float) -> None:
    """Until every key's latest 8-byte count in ``topic`` is its true count (a count with
    the record cache writes fewer records than updates: the count of records says
    nothing)."""
    deadline = time.monotonic() + timeout_s
    want = {k if isinstance(k, bytes) else k.encode(): n for k, n in truth.items()}
    # the keys whose latest count is not yet the truth, kept per record read: a scan of
    # every key per poll held the GIL long enough to slow the app it waits for (the
    # windowed count at 1,000,000 records has 167,000 keys)
    missing = set(want)
    with Consumer({"bootstrap.servers": b, "auto.offset.reset": "earliest",
                   "max.poll.records": 5000}) as c:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        while missing:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {len(missing)} counts not final after "
                                   f"{timeout_s} s")
            for records in c.poll(200).values():
                for r in records:
                    if int.from_bytes(r.value, "big") == want.get(r.key):
                        missing.discard(r.key)
                    else:
                        missing.add(r.key)


def create_topics(b: str, *names: str) -> None:
    with Admin({"bootstrap.servers": b}) as admin:
        admin.create_topics([NewTopic(n, PARTS) for n in names])


def app_config(b: str, guarantee: str, tmp: Path, **extra) -> dict:
    """The streams app's config in every run (the same client batching as the plain loop)."""
    return {"bootstrap.servers": b, "processing.guarantee": guarantee,
            "state.dir": str(tmp / "state"), "consumer.max.poll.records": 5000,
            "producer.batch.size": 262144, **extra}


def plain_loop(b: str, src: str, out: str, n_in: int, transform) -> float:
    """Consumer + producer doing ``transform(key, value) -> [(key, value)]`` by hand."""
    t0 = time.monotonic()
    c0 = time.process_time()
    b0 = broker_cpu()
    with Consumer({"bootstrap.servers": b, "auto.offset.reset": "earliest",
                   "max.poll.records": 5000}) as c, \
            Producer({"bootstrap.servers": b, "linger.ms": 20, "batch.size": 262144}) as p:
        c.assign([TopicPartition(src, q) for q in range(PARTS)])
        seen = 0
        send = p.send
        while seen < n_in:
            for records in c.poll(500).values():
                seen += len(records)
                for r in records:
                    for k, v in transform(r.key, r.value, r.timestamp):
                        send(out, v, k, timestamp_ms=r.timestamp)
        p.flush()
    CPU["last"] = time.process_time() - c0
    CPU["broker"] = broker_cpu() - b0
    return time.monotonic() - t0


CPU: dict[str, float] = {}  # CPU seconds of this process per run (the last one)
BROKER_PIDS: list[int] = []  # the brokers this bench started (their CPU is read from /proc)


def broker_cpu() -> float:
    """CPU seconds (user + system) the brokers this bench started have used so far."""
    total = 0.0
    for pid in BROKER_PIDS:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_app(app: App, b: str, out: str, expected: int | Counter, timeout_s: float) -> float:
    """Seconds from start until the output is complete: ``expected`` records, or (a
    Counter) every key's latest count equal to it. ``CPU["last"]``: this process's CPU
    seconds over the same time (the app's threads and the bench's waiting reader)."""
    t0 = time.monotonic()
    c0 = time.process_time()
    b0 = broker_cpu()
    app.start()
    try:
        if isinstance(expected, Counter):
            wait_latest(b, out, PARTS, expected, timeout_s)
        else:
            wait_output(b, out, PARTS, expected, timeout_s)
        CPU["last"] = time.process_time() - c0
        CPU["broker"] = broker_cpu() - b0
        return time.monotonic() - t0
    finally:
        app.close(60)
        if app.error is not None:
            raise app.error


PARTS = 2


def main() -> None:
    global PARTS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--bootstrap", help="an existing cluster (default: a fresh one-broker)")
    ap.add_argument("--only", default="stateless,wordcount,windowed")
    ap.add_argument("--guarantees", default="at_least_once,exactly_once")
    ap.add_argument("--timeout", type=float, default=3600)
    args = ap.parse_args()
    PARTS = args.partitions
    tmp = Path(tempfile.mkdtemp(prefix="streams-bench-"))
    cluster = None
    if args.bootstrap:
        b = args.bootstrap
    else:
        cluster = LocalCluster(tmp / "cluster", 1)
        cluster.start(timeout_s=60)
        b = cluster.bootstrap_servers
        BROKER_PIDS.extend(pid for pid in map(cluster.pid, cluster.broker_ids) if pid)
    run = os.urandom(3).hex()
    rows: list[tuple[str, str, int, float, float, float, float]] = []
    started = time.monotonic()
    try:
        create_topics(b, f"in-{run}", f"win-{run}")
        only = args.only.split(",")
        guarantees = args.guarantees.split(",")
        if {"stateless", "wordcount"} & set(only):
            text = lines(args.lines)
            t0 = time.monotonic()
            produce(b, f"in-{run}", text, [str(i).encode() for i in range(len(text))])
            print(f"produced {len(text)} lines in {time.monotonic() - t0:.1f} s", flush=True)
            words = 3 * len(text)
        for kind in [k for k in ("stateless", "wordcount") if k in only]:
            counts: Counter = Counter()

            def transform(key, value, ts, kind=kind, counts=counts):
                if kind == "stateless":
                    return [(key, w.upper()) for w in value.split()]
                out = []
                for w in value.split():
                    counts[w] += 1
                    out.append((w, counts[w].to_bytes(8, "big")))
                return out

            out = f"plain-{kind}-{run}"
            create_topics(b, out)
            s = plain_loop(b, f"in-{run}", out, len(text), transform)
            rows.append((kind, "plain consumer+producer", len(text), s, CPU["last"],
                         CPU["broker"], os.getloadavg()[0]))
            print(rows[-1], flush=True)
            for g in guarantees:
                out = f"{kind}-{g}-{run}"
                create_topics(b, out)
                # a word count's output is final at a commit (the record cache): 1 s, not
                # at_least_once's 30 s default, or the bench would time the wait
                app = App(f"bench-{kind}-{g}-{run}".replace("_", "-"), app_config(
                    b, g, tmp, **({"commit.interval.ms": 1000} if g == "at_least_once"
                                  else {})))
                src = app.stream(f"in-{run}", value_serde=serdes.String).flat_map_values(
                    str.split)
                if kind == "stateless":
                    src.map_values(str.upper).to(out, value_serde=serdes.String)
                else:
                    (src.group_by(lambda _k, w: w, key_serde=serdes.String)
                     .count(store="counts").to_stream()
                     .to(out, key_serde=serdes.String, value_serde=serdes.Long))
                s = run_app(app, b, out, words if kind == "stateless" else counts,
                            args.timeout)
                rows.append((kind, f"streams {g}", len(text), s, CPU["last"],
                             CPU["broker"], os.getloadavg()[0]))
                print(rows[-1], flush=True)
        if "windowed" in only:
            from rillet.streams.windows import TumblingWindows

            n = args.records
            base = 1_700_000_000_000
            ts = [base + i * 10 for i in range(n)]  # 100 records per second of event time
            keys = [f"c{i % 1000}".encode() for i in range(n)]
            t0 = time.monotonic()
            produce(b, f"win-{run}", [b"1"] * n, keys, ts)
            print(f"produced {n} records in {time.monotonic() - t0:.1f} s", flush=True)
            wcounts: Counter = Counter()

            def wtransform(key, value, t):
                start = t - t % MINUTE
                wcounts[(key, start)] += 1
                return [(key + start.to_bytes(8, "big"), wcounts[(key, start)].to_bytes(8,
                                                                                        "big"))]

            out = f"plain-windowed-{run}"
            create_topics(b, out)
            s = plain_loop(b, f"win-{run}", out, n, wtransform)
            rows.append(("windowed", "plain consumer+producer", n, s, CPU["last"],
                         CPU["broker"], os.getloadavg()[0]))
            print(rows[-1], flush=True)
            # the final count of every (customer, window), as the app writes it (with the
            # record cache a window's count is written once per commit, not per update)
            wtruth = Counter({f"{k.decode()}@{start}": c for (k, start), c in wcounts.items()})
            for g in guarantees:
                out = f"windowed-{g}-{run}"
                create_topics(b, out)
                app = App(f"bench-win-{g}-{run}".replace("_", "-"), app_config(
                    b, g, tmp, **({"commit.interval.ms": 1000} if g == "at_least_once"
                                  else {})))
                (app.stream(f"win-{run}", key_serde=serdes.String).group_by_key()
                 .window(TumblingWindows(MINUTE)).count(store="per-minute").to_stream()
                 .map(lambda wk, c: (f"{wk.key}@{wk.window.start}", c))
                 .to(out, key_serde=serdes.String, value_serde=serdes.Long))
                s = run_app(app, b, out, wtruth, args.timeout)
                rows.append(("windowed", f"streams {g}", n, s, CPU["last"],
                             CPU["broker"], os.getloadavg()[0]))
                print(rows[-1], flush=True)
    finally:
        if cluster is not None:
            cluster.stop(timeout_s=30)
    print()
    print("| pipeline | run | input records | seconds | records/s | vs plain "
          "| process CPU us per input record | broker CPU us per input record "
          "| load average |")
    print("|---|---|---|---|---|---|---|---|---|")
    plain = {k: n / s for k, r, n, s, *_ in rows if r.startswith("plain")}
    for kind, what, n, s, cpu, bcpu, load in rows:
        rate = n / s
        print(f"| {kind} | {what} | {n:,} | {s:.1f} | {rate:,.0f} | "
              f"{rate / plain[kind]:.2f} | {1e6 * cpu / n:.1f} | "
              f"{1e6 * bcpu / n:.1f} | {load:.1f} |")
    print(f"\nthe bench took {time.monotonic() - started:.0f} s; load average at the end: "
          f"{os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()
