"""Cost of the KAFKA listener's metrics (docs/metrics.md, "Cost").

In process (default): what one Kafka request pays with metrics on (timer, latency histogram,
the error-code scan of the kio response, a fetch's bytes/records out per topic); min over
repeats of ``timeit``.

End to end (``--e2e``): fresh one-broker clusters with a KAFKA listener, metrics on (scraped
every second) and off (``metrics.port=-1``), rounds interleaved; each round a confluent-kafka
producer (acks=1) then consumer of N records (bench/kafka_bench.py's child processes), their
throughput and the broker's CPU per record (from /proc).

    PYTHONPATH=. .venv/bin/python bench/kafka_metrics_bench.py
    PYTHONPATH=. .venv/bin/python bench/kafka_metrics_bench.py --e2e --records 300000 --rounds 3
"""

from __future__ import annotations

import argparse
import timeit
from types import SimpleNamespace

from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from rillet.actors import kafka_metrics as K
from rillet.actors.kafka_metadata import build
from rillet.actors.metrics import BrokerMetrics
from rillet.actors.session import SessionState
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P


def _produce_response(partitions: int):
    cls = load_response_schema(0, 9)
    mod = __import__(cls.__module__, fromlist=["x"])
    parts = tuple(build(mod.PartitionProduceResponse, index=i, error_code=ErrorCode.none,
                        base_offset=i, log_append_time=None, log_start_offset=0,
                        record_errors=(), error_message=None) for i in range(partitions))
    return build(cls, throttle_time=0, responses=(
        build(mod.TopicProduceResponse, name="t", partition_responses=parts),))


def _fetch_response(partitions: int):
    cls = load_response_schema(1, 12)
    mod = __import__(cls.__module__, fromlist=["x"])
    parts = tuple(build(mod.PartitionData, partition_index=i, error_code=ErrorCode.none,
                        high_watermark=10, last_stable_offset=10, log_start_offset=0,
                        aborted_transactions=None, records=b"x" * 1000)
                  for i in range(partitions))
    return build(cls, throttle_time=0, error_code=ErrorCode.none, session_id=0, responses=(
        build(mod.FetchableTopicResponse, topic="t", topic_id="t", partitions=parts),))


def e2e_round(metrics_on: bool, records: int, size: int) -> dict[str, float]:
    """{kafka_produce, kafka_consume: rec/s; *_broker_us: broker CPU us per record}."""
    import os
    import subprocess
    import sys
    import tempfile
    import threading
    import time
    import urllib.request
    from pathlib import Path

    from rillet.launcher import LocalCluster

    kafka_bench = str(Path(__file__).with_name("kafka_bench.py"))
    configs = {"listeners": "KAFKA://127.0.0.1:0"}
    if not metrics_on:
        configs["metrics.port"] = "-1"
    with tempfile.TemporaryDirectory(prefix="rillet-kafka-metrics-bench-") as tmp:
        cluster = LocalCluster(Path(tmp), brokers=1, configs=configs)
        cluster.start()
        stop = threading.Event()
        try:
            env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers,
                   "RILLET_CONFIG_DIR": tmp}
            subprocess.run([sys.executable, "-m", "rillet.cli.main", "topic", "create", "kafka",
                            "-p", "1"], env=env, check=True, capture_output=True)
            path = Path(cluster.broker_dir(1)) / "kafka-listener"
            deadline = time.monotonic() + 60
            while not path.exists():
                if time.monotonic() > deadline:
                    raise SystemExit("the broker wrote no kafka-listener file")
                time.sleep(0.05)
            bootstrap = path.read_text().strip()
            url = cluster.metrics_url(1)
            assert (url is not None) == metrics_on

            def scraper() -> None:
                while not stop.wait(1.0):
                    with urllib.request.urlopen(url, timeout=5) as r:
                        r.read()

            if url:
                threading.Thread(target=scraper, daemon=True).start()
            pid, out = cluster.pid(1), {}
            for phase, extra in (("produce", [str(size)]), ("consume", [])):
                before = _cpu_s(pid)
                text = subprocess.run(
                    [sys.executable, kafka_bench, "--child", phase, bootstrap, "kafka",
                     str(records), *extra],
                    env=env, check=True, capture_output=True, text=True, timeout=900).stdout
                out[f"kafka_{phase}"] = float(text.strip().splitlines()[-1])
                out[f"kafka_{phase}_broker_us"] = (_cpu_s(pid) - before) / records * 1e6
            if url:  # records per request: what turns a hook's cost per request into one per record
                from prometheus_client.parser import text_string_to_metric_families

                with urllib.request.urlopen(url, timeout=5) as r:
                    text = r.read().decode()
                for f in text_string_to_metric_families(text):
                    for x in f.samples:
                        if (x.name == "rillet_request_latency_seconds_count"
                                and x.labels.get("listener") == "KAFKA"
                                and x.labels.get("api") in ("Produce", "Fetch")):
                            out[f"records_per_{x.labels['api'].lower()}"] = records / x.value
            return out
        finally:
            stop.set()
            cluster.stop()


def _cpu_s(pid: int) -> float:
    import os
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def e2e(records: int, size: int, rounds: int) -> None:
    import os
    import statistics

    rows: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for i in range(rounds):
        for on in (True, False) if i % 2 == 0 else (False, True):
            r = e2e_round(on, records, size)
            rows[on].append(r)
            print(f"round {i + 1} metrics {'on ' if on else 'off'} (load "
                  f"{os.getloadavg()[0]:.1f}): " + ", ".join(f"{k} {v:,.2f}" for k, v in r.items()),
                  flush=True)
    print(f"\nmedians of {rounds} rounds per side, {records:,} x {size} B, acks=1:")
    for key in rows[True][0]:
        on = statistics.median(r[key] for r in rows[True])
        if key not in rows[False][0]:
            print(f"  {key:<24} on {on:>12,.2f}")
            continue
        off = statistics.median(r[key] for r in rows[False])
        print(f"  {key:<24} on {on:>12,.2f}  off {off:>12,.2f}  on/off {on / off:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--number", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--e2e", action="store_true", help="end to end, metrics on vs off")
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per side (--e2e)")
    args = ap.parse_args()
    if args.e2e:
        e2e(args.records, args.record_size, args.rounds)
        return

    def best(fn) -> float:
        runs = timeit.repeat(fn, number=args.number, repeat=args.repeat)
        return min(runs) / args.number * 1e6

    metrics = BrokerMetrics()
    broker = SimpleNamespace(metrics=metrics)
    kafka = K.register(broker)
    body = SimpleNamespace()
    print(f"timer (two perf_counter calls) and api_name: "
          f"{best(lambda: (K.now() - K.now(), K.api_name(0, body))):.2f} us")
    for n in (1, 10):
        r = _produce_response(n)
        print(f"Produce answer of {n} partition(s): responded "
              f"{best(lambda r=r: kafka.responded('Produce', r, 0.001)):.2f} us")
        f = _fetch_response(n)
        print(f"Fetch answer of {n} partition(s): responded "
              f"{best(lambda f=f: kafka.responded('Fetch', f, 0.001)):.2f} us")
    b = BatchBuilder()
    for i in range(160):
        b.append(1000 + i, None, b"x" * 100)
    native = P.FetchResponse(topics=(P.FetchTopicResponse(name="t", partitions=(
        P.FetchPartitionResponse(partition=0, records=b.build() * 64),)),))
    print(f"fetched (bytes/records out) of a 64 x 160-record native answer: "
          f"{best(lambda: K.fetched(broker, native)):.2f} us")
    state = SessionState()
    print(f"parking + unparked (a Fetch's purgatory registration): "
          f"{best(lambda: (kafka.parking(state), kafka.unparked(state))):.2f} us")


if __name__ == "__main__":
    main()
