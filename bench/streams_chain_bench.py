"""CPU per input record of rillet.streams' processing chain alone (no broker): the word
count and the windowed count of ``streams_bench.py`` run through real tasks
(``StreamTask``: deserialization, the processor graph, SQLite stores, the record cache,
a flush and store commit every 10,000 input records) whose producer only counts the sends;
the repartition records of the word count are fed to the counting task. Process CPU time,
so other processes' load moves it less than the end-to-end bench's wall-clock rates.

    .venv/bin/python bench/streams_chain_bench.py --records 100000 --rounds 3
"""

from __future__ import annotations

import argparse
import tempfile
import time

from rillet.records import TopicPartition
from rillet.streams import App, serdes
from rillet.streams.api import TaskId
from rillet.streams.stores import build
from rillet.streams.task import Collector, StreamTask
from rillet.streams.windows import TumblingWindows

VOCAB = [f"word{i}" for i in range(1000)]
BASE = 1_700_000_000_000


class CountingProducer:
    """What the tasks' collector sends to: repartition records kept for the next task.
    Its ``send_many`` lets the sinks batch (as with a real producer, whose per-record cost
    is not here: see streams_bench.py's CPU column for the whole)."""

    _partitioner_class = None
    _ignore_keys = False

    def __init__(self) -> None:
        self.sent = 0
        self.repartitioned: list[tuple] = []

    def send(self, topic, value, key, headers, partition, timestamp):
        self.sent += 1
        if topic.endswith("-repartition"):
            self.repartitioned.append((topic, 0, len(self.repartitioned), timestamp, key,
                                       value, ()))

    def send_many(self, topic, partition, keys, values, timestamps, headers=None):
        for i in range(len(values)):
            self.send(topic, values[i], keys[i], None, partition, timestamps[i])
        return []


def run(kind: str, n: int, cache_bytes: int = 10 * 1024 * 1024) -> tuple[float, int]:
    app = App("chain", {"bootstrap.servers": "127.0.0.1:1"})
    if kind == "wordcount":
        (app.stream("in", value_serde=serdes.String).flat_map_values(str.split)
         .group_by(lambda _k, w: w, key_serde=serdes.String).count(store="counts")
         .to_stream().to("out", key_serde=serdes.String, value_serde=serdes.Long))
        records = [("in", 0, i, BASE + i, str(i).encode(),
                    f"{VOCAB[i % 1000]} {VOCAB[(i * 7) % 1000]} "
                    f"{VOCAB[(i * 13) % 1000]}".encode(), ()) for i in range(n)]
    else:
        (app.stream("in", key_serde=serdes.String).group_by_key()
         .window(TumblingWindows(60_000)).count(store="per-minute").to_stream()
         .map(lambda wk, c: (f"{wk.key}@{wk.window.start}", c))
         .to("out", key_serde=serdes.String, value_serde=serdes.Long))
        records = [("in", 0, i, BASE + i * 10, f"c{i % 1000}".encode(), b"1", ())
                   for i in range(n)]
    producer = CountingProducer()
    collector = Collector(producer)
    state = tempfile.mkdtemp(prefix="streams-chain-")
    tasks = [StreamTask(TaskId(st.id, 0), st, application_id="chain", state_dir=state,
                        collector=collector, store_factory=build, exactly_once=False,
                        handler="log_and_fail", dlq_topic=None,
                        partition_count=lambda _t: 1, cache_entries=cache_bytes // 256)
             for st in app.topology.compile(None, None).subtopologies]
    for task in tasks:
        task.initialize()
    first, rest = tasks[0], tasks[1:]
    first.add_partition(TopicPartition("in", 0))
    t0 = time.process_time()
    for i in range(0, n, 10_000):
        first.add_records(TopicPartition("in", 0), records[i:i + 10_000])
        first.process(1_000_000)
        for task in rest:
            batch, producer.repartitioned = producer.repartitioned, []
            if batch:
                tp = TopicPartition(batch[0][0], 0)
                if tp not in task.partitions:
                    task.add_partition(tp)
                task.add_records(tp, batch)
                task.process(1_000_000)
        for task in tasks:  # a commit: caches flushed, stores committed
            task.flush_caches()
        for task in tasks:
            task.commit_stores({})
    cpu = time.process_time() - t0
    for task in tasks:
        task.close(clean=True)
    return cpu, producer.sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="wordcount,windowed")
    args = ap.parse_args()
    for kind in args.only.split(","):
        for _ in range(args.rounds):
            cpu, sent = run(kind, args.records)
            print(f"{kind}: {args.records:,} input records, {cpu:.2f} s CPU, "
                  f"{args.records / cpu:,.0f} records per CPU second, "
                  f"{1e6 * cpu / args.records:.1f} us each, {sent:,} sends", flush=True)


if __name__ == "__main__":
    main()
