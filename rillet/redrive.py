"""Redrive: move dead letters back to a topic for another try (SQS's redrive).

    from rillet.redrive import redrive
    result = redrive("127.0.0.1:9092", "orders.dlq", "orders", filters=["reason~=503"])
    print(result.moved, result.skipped)

Reads ``from_topic`` (the dead-letter topic) up to its end as it was when the call started
(so redriving a topic into itself, or while new dead letters arrive, ends), writes every
record that passes the filters to ``to_topic`` (idempotent producer, acks=all) with its key,
value and own headers, and commits the dead-letter offsets in a consumer group only after
the records before them are acknowledged. A re-run with the same group continues where the
last one stopped (a crash in the middle re-sends at most the records of one poll).

Headers: the ``rillet.dlq.*`` headers are dropped and kept as ``rillet.redrive.*`` (the
history of the last dead-lettering: ``rillet.redrive.reason`` says why it failed), replacing
``rillet.redrive.*`` headers of an earlier redrive; a record dead-lettered again gets fresh
``rillet.dlq.*`` headers from the broker.

Filters (all must match): ``NAME=VALUE`` (exact) or ``NAME~=REGEX`` (``re.search``) where
NAME is ``key``, a dead-letter header by its short name (``reason``, ``topic``,
``partition``, ``offset``, ``delivery.count``, ``group``) or any header name. The default
group is ``rillet-redrive.<from>.<to>`` plus the filters, so a re-run with the same filters
continues and one with other filters starts from the beginning; records that do not match
are passed over (counted as ``skipped``) and stay in the dead-letter topic.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rillet.errors import ConfigError
from rillet.records import TopicPartition
from rillet.retry import DLQ_HEADERS

DLQ_PREFIX = "rillet.dlq."
REDRIVE_PREFIX = "rillet.redrive."
_SHORT = {h[len(DLQ_PREFIX):]: h for h in DLQ_HEADERS}


@dataclass
class RedriveResult:
    """``moved``: records written to the target; ``skipped``: passed over by the filters;
    ``by_reason``: moved records per ``rillet.dlq.reason``."""

    from_topic: str
    to_topic: str
    group_id: str
    moved: int = 0
    skipped: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False


def parse_filter(spec: str) -> Callable[[Any], bool]:
    """``NAME=VALUE`` or ``NAME~=REGEX`` as a predicate on a record (see the module doc)."""
    m = re.fullmatch(r"\s*([^=~\s]+)\s*(~=|=)(.*)", spec, re.S)
    if not m:
        raise ConfigError(f"filter {spec!r}: use NAME=VALUE or NAME~=REGEX "
                          f"(NAME: key, reason, topic, partition, offset, delivery.count, "
                          f"group, or a header name)")
    name, op, wanted = m.group(1), m.group(2), m.group(3)
    if op == "~=":
        try:
            pattern = re.compile(wanted)
        except re.error as exc:
            raise ConfigError(f"filter {spec!r}: bad regular expression: {exc}") from None
        match: Callable[[str], bool] = lambda text: pattern.search(text) is not None  # noqa: E731
    else:
        match = lambda text: text == wanted  # noqa: E731
    header = _SHORT.get(name, name)

    def predicate(record: Any) -> bool:
        if name == "key":
            value = record.key
        else:
            value = next((v for k, v in (record.headers or ()) if k == header), None)
        if value is None:
            return False
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        return match(text)

    return predicate


def redriven_headers(headers: Iterable[tuple[str, bytes | None]]) -> list[tuple[str, Any]]:
    """Own headers kept; ``rillet.dlq.X`` becomes ``rillet.redrive.X`` (old ones replaced)."""
    headers = list(headers or ())
    had_dlq = any(k.startswith(DLQ_PREFIX) for k, _ in headers)
    out = []
    for k, v in headers:
        if k.startswith(DLQ_PREFIX):
            out.append((REDRIVE_PREFIX + k[len(DLQ_PREFIX):], v))
        elif not (had_dlq and k.startswith(REDRIVE_PREFIX)):
            out.append((k, v))
    return out


def default_group(from_topic: str, to_topic: str, filters: Iterable[str]) -> str:
    tail = ";".join(filters)
    return f"rillet-redrive.{from_topic}.{to_topic}" + (f".{tail}" if tail else "")


def redrive(bootstrap_servers: str | list[str], from_topic: str, to_topic: str, *,
            filters: Iterable[str] = (), group_id: str | None = None,
            limit: int | None = None, dry_run: bool = False, from_beginning: bool = False,
            timeout_s: float = 60.0, config: dict[str, Any] | None = None) -> RedriveResult:
    """Move the dead letters of ``from_topic`` to ``to_topic``; see the module doc.
    ``limit``: stop after moving this many; ``dry_run``: count only (no writes, no commits);
    ``from_beginning``: ignore what the group committed."""
    from rillet.consumer import Consumer
    from rillet.producer import Producer

    specs = list(filters)
    predicates = [parse_filter(s) for s in specs]
    if from_topic == to_topic:
        raise ConfigError("--from and --to must be different topics")
    group = group_id or default_group(from_topic, to_topic, specs)
    servers = bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(
        bootstrap_servers)
    base = {"bootstrap.servers": servers, **(config or {})}
    result = RedriveResult(from_topic, to_topic, group, dry_run=dry_run)
    consumer = Consumer({**base, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "max.poll.records": 1000})
    producer = None if dry_run else Producer({**base, "acks": "all",
                                              "enable.idempotence": True})
    try:
        if not dry_run:
            producer.partitions_for(to_topic)  # fails early when the target does not exist
        tps = [TopicPartition(from_topic, p) for p in sorted(consumer.partitions_for_topic(
            from_topic))]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        committed = {} if from_beginning else consumer.committed(tps)
        starts = consumer.beginning_offsets(tps)
        for tp in tps:
            c = committed.get(tp)
            consumer.seek(tp, max(c, starts[tp]) if c is not None else starts[tp])
        todo = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        deadline = time.monotonic() + timeout_s
        while todo and (limit is None or result.moved < limit):
            if time.monotonic() > deadline:
                from rillet.errors import RilletTimeoutError

                raise RilletTimeoutError(
                    f"redrive did not reach the end of {from_topic} in {timeout_s} s "
                    f"({result.moved} moved so far; a re-run continues)")
            batch = consumer.poll(timeout_ms=500)
            offsets: dict[TopicPartition, int] = {}
            futures = []
            for tp, records in batch.items():
                for r in records:
                    if r.offset >= ends[tp] or (limit is not None and result.moved >= limit):
                        break
                    offsets[tp] = r.offset + 1
                    if not all(pred(r) for pred in predicates):
                        result.skipped += 1
                        continue
                    result.moved += 1
                    reason = next((v for k, v in r.headers if k == DLQ_PREFIX + "reason"), b"")
                    text = (reason or b"").decode("utf-8", "replace")
                    result.by_reason[text] = result.by_reason.get(text, 0) + 1
                    if not dry_run:
                        futures.append(producer.send(to_topic, value=r.value, key=r.key,
                                                     headers=redriven_headers(r.headers)))
            if futures:
                producer.flush(timeout_s)
                for f in futures:
                    f.get(timeout_s)  # every record acknowledged before its offset commits
            if offsets and not dry_run:
                consumer.commit(offsets)
            for tp in list(todo):
                if consumer.position(tp) >= ends[tp] or offsets.get(tp, 0) >= ends[tp]:
                    todo.discard(tp)
    finally:
        if producer is not None:
            producer.close()
        consumer.close()
    return result


__all__ = ["RedriveResult", "default_group", "parse_filter", "redrive", "redriven_headers"]
