"""``rillet perf produce|consume``: the output lines of Kafka's perf-test tools.

``perf produce`` prints, like kafka-producer-perf-test, a window line every 5 s and a final
line with latency percentiles (MB = 2^20 bytes). Latency is measured from ``send()`` to the
acknowledgement on one record in every ``--latency-sample`` (default 50) plus the last one;
counting every record's callback would cost more than the rest of ``send()``.

``perf consume`` prints kafka-consumer-perf-test's CSV header and row. A progress bar goes to
stderr when it is a terminal.
"""

from __future__ import annotations

import datetime as dt
import operator
import random
import sys
import threading
import time
from itertools import repeat

import click

from rillet.cli.common import bootstrap_option, parse_kv, resolve_brokers

MB = 1024 * 1024
_KEY = operator.itemgetter(4)  # ConsumerRecord.key
_VALUE = operator.itemgetter(5)  # ConsumerRecord.value


@click.group("perf")
def perf() -> None:
    """Throughput and latency tests (Kafka's perf-test output formats)."""


class _Stats:
    """Latency samples and windowed counts, shared with the producer's sender thread."""

    def __init__(self, record_size: int, report_s: float = 5.0) -> None:
        self.record_size = record_size
        self.report_s = report_s
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors = 0
        self.first_error: BaseException | None = None
        self.start = time.monotonic()
        self.window_start = self.start
        self.window_count = 0
        self.window_lat: list[float] = []

    def sample(self, sent_at: float):
        def done(err, _md) -> None:
            lat = (time.monotonic() - sent_at) * 1000
            with self.lock:
                if err is not None:
                    self.errors += 1
                    self.first_error = self.first_error or err
                    return
                self.latencies.append(lat)
                self.window_lat.append(lat)
        return done

    def window(self, sent: int, force: bool = False) -> str | None:
        now = time.monotonic()
        if not force and now - self.window_start < self.report_s:
            return None
        with self.lock:
            lats, self.window_lat = self.window_lat, []
        n = sent - self.window_count
        elapsed = max(now - self.window_start, 1e-9)
        self.window_start, self.window_count = now, sent
        rate = n / elapsed
        avg = sum(lats) / len(lats) if lats else 0.0
        return (f"{n} records sent, {rate:.1f} records/sec "
                f"({rate * self.record_size / MB:.2f} MB/sec), {avg:.1f} ms avg latency, "
                f"{max(lats, default=0.0):.1f} ms max latency.")

    def final(self, sent: int, elapsed: float) -> str:
        lats = sorted(self.latencies)
        rate = sent / max(elapsed, 1e-9)

        def pct(q: float) -> int:
            return int(lats[min(len(lats) - 1, int(q * len(lats)))]) if lats else 0

        avg = sum(lats) / len(lats) if lats else 0.0
        return (f"{sent} records sent, {rate:.1f} records/sec "
                f"({rate * self.record_size / MB:.2f} MB/sec), {avg:.2f} ms avg latency, "
                f"{max(lats, default=0.0):.2f} ms max latency, {pct(0.5)} ms 50th, "
                f"{pct(0.95)} ms 95th, {pct(0.99)} ms 99th, {pct(0.999)} ms 99.9th.")


class _Bar:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        frac = done / self.total if self.total else 1.0
        width = 30
        fill = int(frac * width)
        sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] "
                         f"{done}/{self.total} {frac:6.1%}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 79 + "\r")
            sys.stderr.flush()


@perf.command("produce")
@click.option("--topic", "-t", required=True)
@click.option("--num-records", "-n", type=click.IntRange(1), required=True)
@click.option("--record-size", "-s", type=click.IntRange(0), default=100, show_default=True)
@click.option("--throughput", type=int, default=-1, show_default=True,
              help="Records/s to aim for; -1 means as fast as possible.")
@click.option("--producer-props", "--command-property", "props", multiple=True,
              metavar="KEY=VALUE", help="Producer configs (repeatable; several per option "
                                        "separated by spaces also work).")
@click.option("--key-count", type=click.IntRange(0), default=0,
              help="Cycle through this many keys (0: null keys, as Kafka's tool).")
@click.option("--latency-sample", type=click.IntRange(1), default=50, show_default=True,
              help="Measure the latency of one record in this many.")
@click.option("--seed", type=int, default=0)
@click.option("--transaction-size", type=click.IntRange(1), default=None,
              help="Write in transactions of this many records (commit after each).")
@click.option("--transaction-duration-ms", type=click.IntRange(1), default=None,
              help="Write in transactions of this long (Kafka's flag; commit when a "
                   "transaction is this old).")
@click.option("--transactional-id", default=None,
              help="With --transaction-size/--transaction-duration-ms (default: "
                   "performance-producer-default-transactional-id, as Kafka's tool).")
@click.argument("more_props", nargs=-1, metavar="[KEY=VALUE]...")
@bootstrap_option
def perf_produce(topic, num_records, record_size, throughput, props, key_count,
                 latency_sample, seed, transaction_size, transaction_duration_ms,
                 transactional_id, more_props, bootstrap) -> None:
    """Produce NUM_RECORDS records of RECORD_SIZE bytes as fast as possible (or throttled).

    As in Kafka's tool, --producer-props takes several KEY=VALUE words:
    `--producer-props acks=1 linger.ms=5`.
    """
    from rillet.producer import Producer

    items = [kv for p in (*props, *more_props) for kv in p.split()]
    config = {"bootstrap.servers": resolve_brokers(bootstrap), **parse_kv(items,
                                                                          "--producer-props")}
    transactional = transaction_size is not None or transaction_duration_ms is not None
    if transactional_id is not None and not transactional:
        raise click.UsageError(
            "--transactional-id needs --transaction-size or --transaction-duration-ms")
    if transactional:
        config.setdefault(
            "transactional.id", transactional_id or "performance-producer-default-transactional-id"
        )
    rng = random.Random(seed)
    payload = bytes(rng.randrange(65, 91) for _ in range(record_size))  # A-Z, as Kafka's tool
    keys = [f"key-{i:012d}".encode() for i in range(key_count)] if key_count else None
    stats = _Stats(record_size)
    bar = _Bar(num_records, "producing")
    with Producer(config) as producer:
        producer.partitions_for(topic)
        send = producer.send
        if transactional:
            send = _transactional(producer, transaction_size, transaction_duration_ms)
        monotonic = time.monotonic
        start = monotonic()
        stats.start = stats.window_start = start
        if throughput > 0:
            check_every = max(1, min(1000, throughput // 100))
            for i in range(num_records):
                key = keys[i % key_count] if keys else None
                if i % latency_sample == 0 or i == num_records - 1:
                    send(topic, payload, key=key, on_delivery=stats.sample(monotonic()))
                else:
                    send(topic, payload, key=key)
                if i % check_every == 0 and i:
                    ahead = i / throughput - (monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
                    _progress(stats, bar, i)
        else:
            _produce_unthrottled(send, topic, payload, keys, num_records, latency_sample,
                                 stats, bar)
        if transactional:
            producer.commit_transaction()  # the last, partial transaction (flushes first)
        producer.flush()
        elapsed = monotonic() - start
    bar.close()
    click.echo(stats.final(num_records - stats.errors, elapsed))
    if stats.errors:
        raise click.ClickException(f"{stats.errors} sampled record(s) failed: "
                                   f"{stats.first_error}")


def _transactional(producer, size: int | None, duration_ms: int | None):
    """``send`` in transactions: each is committed after ``size`` records or once it is
    ``duration_ms`` old, whichever comes first (the age is checked every 100 records)."""
    producer.init_transactions()
    producer.begin_transaction()
    inner = producer.send
    monotonic = time.monotonic
    duration_s = None if duration_ms is None else duration_ms / 1000
    state = [size or 0, 0, monotonic()]  # records left (0: no size), count, started

    def send(*args, **kwargs):
        future = inner(*args, **kwargs)
        state[1] += 1
        if size is not None:
            state[0] -= 1
            done = state[0] == 0
        else:
            done = False
        if not done and duration_s is not None and state[1] % 100 == 0:
            done = monotonic() - state[2] >= duration_s
        if done:
            producer.commit_transaction()
            producer.begin_transaction()
            state[0], state[2] = size or 0, monotonic()
        return future

    return send


def _progress(stats: _Stats, bar: _Bar, sent: int) -> None:
    line = stats.window(sent)
    if line:
        bar.close()
        click.echo(line)
    bar.update(sent)


def _produce_unthrottled(send, topic, payload, keys, num_records, latency_sample, stats,
                         bar) -> None:
    """The same records and samples as the throttled loop (record i has key i % key_count;
    records 0, s, 2s, ... and the last one are sampled), in segments of ``latency_sample``
    records whose inner loop is only ``send``: the tool's own bookkeeping must not cost a
    noticeable share of what it measures."""
    monotonic = time.monotonic
    sample = stats.sample
    last = num_records - 1
    key_count = len(keys) if keys else 0
    next_report = 1000
    for first in range(0, num_records, latency_sample):
        end = min(first + latency_sample, num_records)
        tail = end == num_records and end - first > 1  # the run's last record: sampled too
        inner_end = end - 1 if tail else end
        if keys:
            send(topic, payload, keys[first % key_count], on_delivery=sample(monotonic()))
            for j in range(first + 1, inner_end):
                send(topic, payload, keys[j % key_count])
        else:
            send(topic, payload, on_delivery=sample(monotonic()))
            for _ in repeat(None, inner_end - first - 1):
                send(topic, payload)
        if tail:
            send(topic, payload, keys[last % key_count] if keys else None,
                 on_delivery=sample(monotonic()))
        if end >= next_report:
            next_report = end + 1000
            _progress(stats, bar, end)


@perf.command("consume")
@click.option("--topic", "-t", required=True)
@click.option("--messages", "-n", type=click.IntRange(1), required=True)
@click.option("--timeout", "timeout_ms", type=click.IntRange(1), default=10000,
              show_default=True, help="Give up after this many ms without a record.")
@click.option("--from-latest", is_flag=True, help="Start at the end instead of the beginning.")
@click.option("--hide-header", is_flag=True)
@click.option("--consumer-props", "--command-property", "props", multiple=True,
              metavar="KEY=VALUE")
@click.argument("more_props", nargs=-1, metavar="[KEY=VALUE]...")
@bootstrap_option
def perf_consume(topic, messages, timeout_ms, from_latest, hide_header, props, more_props,
                 bootstrap) -> None:
    """Consume MESSAGES records from all partitions of TOPIC and report the rate."""
    from rillet.consumer import Consumer
    from rillet.records import TopicPartition

    items = [kv for p in (*props, *more_props) for kv in p.split()]
    config = {"bootstrap.servers": resolve_brokers(bootstrap), **parse_kv(items,
                                                                          "--consumer-props")}
    bar = _Bar(messages, "consuming")
    count = 0
    nbytes = 0
    with Consumer(config) as consumer:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        if from_latest:
            consumer.seek_to_end(*tps)
        else:
            consumer.seek_to_beginning(*tps)
        start_wall = dt.datetime.now()
        start = time.monotonic()
        last_record = start
        while count < messages:
            batch = consumer.poll(100, max_records=min(100_000, messages - count))
            if batch:
                last_record = time.monotonic()
                for records in batch.values():
                    count += len(records)
                    nbytes += _payload_bytes(records)
                bar.update(count)
            elif (time.monotonic() - last_record) * 1000 >= timeout_ms:
                break
        elapsed = time.monotonic() - start
        end_wall = dt.datetime.now()
    bar.close()
    mb = nbytes / MB
    secs = max(elapsed, 1e-9)
    if not hide_header:
        click.echo("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, "
                   "nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec")
    click.echo(f"{_kafka_time(start_wall)}, {_kafka_time(end_wall)}, {mb:.4f}, {mb / secs:.4f}, "
               f"{count}, {count / secs:.4f}, 0, {int(elapsed * 1000)}, {mb / secs:.4f}, "
               f"{count / secs:.4f}")
    if count < messages:
        raise click.ClickException(f"only {count} of {messages} messages arrived before "
                                   f"{timeout_ms} ms without a record")


def _payload_bytes(records) -> int:
    """Bytes of the non-null keys and values of ``records``, as Kafka's ConsumerPerformance
    counts them (``if (record.key != null) bytesRead += record.key.size``, same for the
    value), in C-level loops so that the counting costs less than the consuming."""
    try:
        n = sum(map(len, map(_VALUE, records)))
    except TypeError:  # some value is None (a tombstone)
        n = sum(map(len, filter(None, map(_VALUE, records))))
    if any(map(_KEY, records)):  # else every key is None or empty: 0 bytes
        n += sum(map(len, filter(None, map(_KEY, records))))
    return n


def _kafka_time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S:") + f"{t.microsecond // 1000:03d}"
