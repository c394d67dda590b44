"""``rillet log-dirs describe`` (kafka-log-dirs.sh --describe) and ``rillet topic
reassignments`` (kafka-reassign-partitions.sh --list)."""

from __future__ import annotations

import json

import click

from rillet.cli.topic import _admin, _ids, _table, admin_options


def _csv(value: str | None, what: str, cast=str) -> list | None:
    if value is None:
        return None
    try:
        items = [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a comma-separated list",
                                 param_hint=what) from None
    return items


@click.group("log-dirs")
def log_dirs() -> None:
    """Where each broker keeps its replicas, and how big they are."""


@log_dirs.command("describe")
@click.option("--broker-list", help="Broker ids, comma-separated (default: every live broker).")
@click.option("--topic-list", help="Topics, comma-separated (default: every topic).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              help="json: kafka-log-dirs.sh's document.")
@admin_options
def describe(broker_list, topic_list, fmt, bootstrap, timeout_ms) -> None:
    """Each broker's log directory: every replica with its size in bytes and offset lag."""
    brokers = _csv(broker_list, "--broker-list", int)
    topics = _csv(topic_list, "--topic-list")
    with _admin(bootstrap) as admin:
        found = admin.describe_log_dirs(brokers, topics=topics)
    if fmt == "json":
        click.echo(json.dumps({"version": 1, "brokers": [{
            "broker": b,
            "logDirs": [{
                "logDir": path,
                "error": None if d.error is None else str(d.error),
                "partitions": [{"partition": f"{tp.topic}-{tp.partition}", "size": r.size,
                                "offsetLag": r.offset_lag, "isFuture": r.is_future}
                               for tp, r in sorted(d.replica_infos.items())]}
                for path, d in dirs.items()]}
            for b, dirs in sorted(found.items())]}))
        return
    rows = []
    for b, dirs in sorted(found.items()):
        for path, d in dirs.items():
            free = f"{d.usable_bytes}/{d.total_bytes}" if d.total_bytes >= 0 else "-"
            click.echo(f"Broker {b}: {path} (usable/total bytes: {free})"
                       + (f" error: {d.error}" if d.error is not None else ""))
            for tp, r in sorted(d.replica_infos.items()):
                rows.append((b, f"{tp.topic}-{tp.partition}", r.size, r.offset_lag,
                             r.log_start_offset, r.log_end_offset))
    if rows:
        _table(["BROKER", "PARTITION", "SIZE", "OFFSET_LAG", "LOG_START", "LOG_END"], rows)


@click.command("reassignments")
@click.argument("topics", nargs=-1)
@admin_options
def reassignments(topics, bootstrap, timeout_ms) -> None:
    """List the partition reassignments under way (kafka-reassign-partitions --list)."""
    with _admin(bootstrap) as admin:
        if topics:
            wanted = [(t, p.partition) for t in topics
                      for p in admin.describe_topics([t])[t].partitions]
        else:
            wanted = None
        ongoing = admin.list_partition_reassignments(wanted)
    if not ongoing:
        click.echo("No partition reassignments found.")
        return
    click.echo("Current partition reassignments:")
    for tp, r in sorted(ongoing.items()):
        click.echo(f"{tp.topic}-{tp.partition}: replicas: {_ids(r.replicas)}. "
                   f"adding: {_ids(r.adding_replicas)}. removing: {_ids(r.removing_replicas)}.")
