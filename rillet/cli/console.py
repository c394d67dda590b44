"""``rillet produce`` and ``rillet consume``: the console producer and consumer.

Line formats and ``--property`` names are kafka-console-producer/-consumer's, so muscle memory
(``--property parse.key=true --property key.separator=:``, ``--property print.key=true``)
works; rpk-style short flags (``-o``, ``-n``, ``-k``, ``-H``) too.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time

import click

from rillet.cli._topic_arg import topic_argument
from rillet.cli.common import bootstrap_option, parse_kv, resolve_brokers, truthy, unescape


class _Failures:
    def __init__(self) -> None:
        self.count = 0
        self.first: BaseException | None = None
        self.lock = threading.Lock()

    def add(self, err: BaseException) -> None:
        with self.lock:
            self.count += 1
            if self.first is None:
                self.first = err


@click.command("produce")
@topic_argument
@click.option("--property", "props", multiple=True, metavar="KEY=VALUE",
              help="Line reader property: parse.key, key.separator (default TAB), "
                   "parse.headers, headers.delimiter, headers.separator, "
                   "headers.key.separator, null.marker.")
@click.option("-K", "--parse-key", is_flag=True, help="Short for --property parse.key=true.")
@click.option("-k", "--key", "fixed_key", help="Use this key for every record.")
@click.option("-H", "--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="Add this header to every record (repeatable).")
@click.option("-p", "--partition", type=click.IntRange(0), help="Send to this partition only.")
@click.option("--acks", type=click.Choice(["all", "-1", "0", "1"]), default=None)
@click.option("-z", "--compression", type=click.Choice(["none", "gzip", "zstd", "lz4", "snappy"]))
@click.option("-X", "--producer-property", "--command-property", "extra", multiple=True,
              metavar="KEY=VALUE", help="Any producer config, e.g. linger.ms=0 (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Do not echo where each record went.")
@bootstrap_option
def produce(topic, props, parse_key, fixed_key, headers, partition, acks, compression, extra,
            quiet, bootstrap) -> None:
    """Send stdin lines to TOPIC, one record per line.

    Echoes `Produced to partition P at offset O` per record (-q silences it).
    """
    from rillet.producer import Producer

    reader = {k.lower(): v for k, v in parse_kv(props, "--property").items()}
    parse_key = parse_key or truthy(reader.get("parse.key", "false"))
    key_sep = unescape(reader.get("key.separator", "\t")).encode()
    parse_headers = truthy(reader.get("parse.headers", "false"))
    headers_delim = unescape(reader.get("headers.delimiter", "\t")).encode()
    headers_sep = unescape(reader.get("headers.separator", ",")).encode()
    headers_key_sep = unescape(reader.get("headers.key.separator", ":")).encode()
    null_marker = reader.get("null.marker")
    null_marker = null_marker.encode() if null_marker is not None else None
    fixed_headers = [(k, v.encode()) for k, v in parse_kv(headers, "--header").items()]

    config = {"bootstrap.servers": resolve_brokers(bootstrap), "max.block.ms": "15000",
              "request.timeout.ms": "15000", **parse_kv(extra, "-X")}
    if acks is not None:
        config["acks"] = acks
    if compression is not None:
        config["compression.type"] = compression
    interactive = sys.stdin.isatty()
    if interactive:
        config.setdefault("linger.ms", "0")
    failures = _Failures()
    out = sys.stdout
    out_lock = threading.Lock()

    def report(err, md) -> None:
        if err is not None:
            failures.add(err)
            click.echo(f"Error: record not delivered: {err}", err=True)
        elif not quiet:
            with out_lock:
                out.write(f"Produced to partition {md.partition} at offset {md.offset}\n")
                if interactive:
                    out.flush()

    with Producer(config) as producer:
        producer.partitions_for(topic)  # fail fast on an unknown topic
        for lineno, raw in enumerate(sys.stdin.buffer, 1):
            line = raw[:-1] if raw.endswith(b"\n") else raw
            if line.endswith(b"\r"):
                line = line[:-1]
            record_headers = list(fixed_headers)
            if parse_headers:
                head, sep, line = line.partition(headers_delim)
                if not sep:
                    raise click.ClickException(
                        f"line {lineno}: no headers delimiter {headers_delim!r} found")
                for item in head.split(headers_sep) if head else ():
                    hk, hsep, hv = item.partition(headers_key_sep)
                    if not hsep:
                        raise click.ClickException(f"line {lineno}: header {item!r} has no "
                                                   f"{headers_key_sep.decode()!r}")
                    record_headers.append((hk.decode(), None if hv == null_marker else hv))
            key: bytes | None = fixed_key.encode() if fixed_key is not None else None
            if parse_key:
                key, sep, line = line.partition(key_sep)
                if not sep:
                    raise click.ClickException(
                        f"line {lineno}: no key separator {key_sep.decode()!r} found "
                        f"(parse.key=true expects KEY{key_sep.decode()}VALUE)")
                if null_marker is not None and key == null_marker:
                    key = None
            value: bytes | None = line
            if null_marker is not None and value == null_marker:
                value = None
            fut = producer.send(topic, value, key=key, headers=record_headers or None,
                                partition=partition, on_delivery=report)
            if interactive:
                try:
                    fut.get(30)
                except Exception:  # noqa: BLE001 - reported by the callback
                    pass
        producer.flush()
    out.flush()
    if failures.count:
        raise click.ClickException(f"{failures.count} record(s) were not delivered "
                                   f"(first error: {failures.first})")


@click.command("consume")
@topic_argument
@click.option("-p", "--partition", "partitions", type=click.IntRange(0), multiple=True,
              help="Consume only this partition (repeatable; default: all).")
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset.")
@click.option("-o", "--offset", default=None, metavar="beginning|end|N|-N|@TS",
              help="Where to start: beginning, end, an offset N, -N (N before the end), or "
                   "@TS (the first record with a timestamp >= TS, ms since the epoch).")
@click.option("-n", "--max-messages", type=click.IntRange(1), help="Exit after N records.")
@click.option("--timeout-ms", type=click.IntRange(1), help="Exit after this long without "
                                                           "a record.")
@click.option("-e", "--exit-at-end", is_flag=True, help="Exit at the end of the partitions.")
@click.option("--property", "props", multiple=True, metavar="KEY=VALUE",
              help="Formatter property: print.key, print.offset, print.partition, "
                   "print.timestamp, print.headers, print.value, key.separator, "
                   "line.separator, headers.separator, null.literal.")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("-g", "--group", help="Join this consumer group: the coordinator assigns the "
                                    "partitions; offsets are committed (auto-commit).")
@click.option("--isolation-level", type=click.Choice(["read_uncommitted", "read_committed"]),
              default=None, help="read_committed: only records of committed transactions "
                                 "(up to the last stable offset). Default: read_uncommitted.")
@click.option("-X", "--consumer-property", "--command-property", "extra", multiple=True,
              metavar="KEY=VALUE", help="Any consumer config (repeatable).")
@bootstrap_option
def consume(topic, partitions, from_beginning, offset, max_messages, timeout_ms, exit_at_end,
            props, fmt, group, isolation_level, extra, bootstrap) -> None:
    """Print the records of TOPIC, one value per line.

    Starts at the end (new records only) unless --from-beginning or -o. Prints
    `Processed a total of N messages` to stderr at exit.
    """
    from rillet.consumer import Consumer
    from rillet.records import TopicPartition

    if group is not None and (partitions or offset is not None):
        raise click.UsageError("--group cannot be combined with -p/--partition or -o/--offset "
                               "(the group assigns partitions and remembers offsets)")
    fmt_props = {k.lower(): v for k, v in parse_kv(props, "--property").items()}
    config = {"bootstrap.servers": resolve_brokers(bootstrap), "request.timeout.ms": "15000",
              **parse_kv(extra, "-X")}
    if isolation_level is not None:
        config["isolation.level"] = isolation_level
    if group is not None:
        config = {"group.id": group, "client.id": "rillet-console-consumer",
                  "auto.offset.reset": "earliest" if from_beginning else "latest", **config}
    count = 0
    started = False
    consumer = Consumer(config)
    try:
        if group is not None:
            consumer.partitions_for_topic(topic)  # fail fast on an unknown topic
            consumer.subscribe([topic])
            tps = []
        else:
            tps = [TopicPartition(topic, p)
                   for p in (partitions or sorted(consumer.partitions_for_topic(topic)))]
            consumer.assign(tps)
        started = True
        if group is None:
            _start(consumer, tps, "beginning" if from_beginning and offset is None else offset)
        end_offsets = consumer.end_offsets(tps) if exit_at_end and tps else None
        write = _formatter(fmt, fmt_props)
        out = sys.stdout.buffer
        idle_since = time.monotonic()
        while max_messages is None or count < max_messages:
            limit = 500 if max_messages is None else min(500, max_messages - count)
            batch = consumer.poll(200, max_records=limit)
            if batch:
                idle_since = time.monotonic()
                for records in batch.values():
                    for r in records:
                        out.write(write(r))
                        count += 1
                out.flush()
            elif timeout_ms is not None and time.monotonic() - idle_since >= timeout_ms / 1000:
                break
            if end_offsets is not None and all(
                    consumer.position(tp) >= end for tp, end in end_offsets.items()):
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
        if started:
            click.echo(f"Processed a total of {count} messages", err=True)


def _start(consumer, tps, offset: str | None) -> None:
    if offset is None or offset in ("end", "latest"):
        consumer.seek_to_end(*tps)
    elif offset in ("beginning", "earliest", "start", "oldest"):
        consumer.seek_to_beginning(*tps)
    elif offset.startswith("@"):  # kcat's -o @TS: the first record at or after TS (ms)
        try:
            when = int(offset[1:])
        except ValueError:
            raise click.BadParameter(f"{offset!r}: @TS takes a timestamp in ms",
                                     param_hint="-o/--offset") from None
        found = consumer.offsets_for_times({tp: when for tp in tps})
        ends = consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, ends[tp] if found[tp] is None else found[tp])
    else:
        try:
            value = int(offset)
        except ValueError:
            raise click.BadParameter(f"{offset!r}: use beginning, end, N, -N or @TS",
                                     param_hint="-o/--offset") from None
        if value >= 0:
            for tp in tps:
                consumer.seek(tp, value)
        else:
            starts = consumer.beginning_offsets(tps)
            for tp, end in consumer.end_offsets(tps).items():
                consumer.seek(tp, max(starts[tp], end + value))


def _formatter(fmt: str, props: dict[str, str]):
    if fmt == "json":
        def to_json(r) -> bytes:
            return (json.dumps({
                "topic": r.topic, "partition": r.partition, "offset": r.offset,
                "timestamp": r.timestamp, "key": _text(r.key), "value": _text(r.value),
                "headers": [[k, _text(v)] for k, v in (r.headers or ())],
            }, ensure_ascii=False) + "\n").encode()
        return to_json

    flag = {k: truthy(props.get(f"print.{k}", "false"))
            for k in ("timestamp", "partition", "offset", "headers", "key")}
    print_value = truthy(props.get("print.value", "true"))
    sep = unescape(props.get("key.separator", "\t")).encode()
    line_sep = unescape(props.get("line.separator", "\n")).encode()
    headers_sep = unescape(props.get("headers.separator", ",")).encode()
    null = props.get("null.literal", "null").encode()
    plain = not any(flag.values()) and print_value

    def to_text(r) -> bytes:
        if plain:
            return (null if r.value is None else r.value) + line_sep
        parts = []
        if flag["timestamp"]:
            parts.append(b"CreateTime:%d" % r.timestamp)
        if flag["partition"]:
            parts.append(b"Partition:%d" % r.partition)
        if flag["offset"]:
            parts.append(b"Offset:%d" % r.offset)
        if flag["headers"]:
            parts.append(headers_sep.join(
                k.encode() + b":" + (null if v is None else v) for k, v in r.headers)
                if r.headers else b"NO_HEADERS")
        if flag["key"]:
            parts.append(null if r.key is None else r.key)
        if print_value:
            parts.append(null if r.value is None else r.value)
        return sep.join(parts) + line_sep

    return to_text


def _text(data: bytes | None):
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}
