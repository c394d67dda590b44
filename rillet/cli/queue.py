"""``rillet queue redrive``: move dead letters back for another try (docs/queues.md)."""

from __future__ import annotations

import click

from rillet.cli.common import bootstrap_option, resolve_brokers


@click.group("queue")
def queue() -> None:
    """Queues on share groups: dead-letter redrive."""


@queue.command("redrive")
@click.option("--from", "from_topic", required=True, metavar="DLQ",
              help="The dead-letter topic to read (e.g. orders.dlq).")
@click.option("--to", "to_topic", required=True, metavar="TOPIC",
              help="Where the records go back to (e.g. orders).")
@click.option("--filter", "filters", multiple=True, metavar="NAME=VALUE|NAME~=REGEX",
              help="Only records whose key or header matches (NAME: key, reason, topic, "
                   "partition, offset, delivery.count, group, or a header name); repeatable, "
                   "all must match.")
@click.option("--group", "group_id", metavar="GROUP",
              help="Consumer group that remembers how far the DLQ was redriven (default: "
                   "rillet-redrive.<from>.<to>[.<filters>]).")
@click.option("--limit", type=click.IntRange(1), help="Move at most this many records.")
@click.option("--from-beginning", is_flag=True,
              help="Ignore the group's progress and read the DLQ from its start.")
@click.option("--dry-run", is_flag=True, help="Count what would move; write nothing.")
@click.option("--timeout-ms", type=click.IntRange(1), default=60000, show_default=True,
              help="Give up (a re-run continues) after this long.")
@bootstrap_option
def redrive_cmd(from_topic, to_topic, filters, group_id, limit, from_beginning, dry_run,
                timeout_ms, bootstrap) -> None:
    """Move dead letters from --from back to --to, with their key, value and headers
    (the rillet.dlq.* headers become rillet.redrive.*). Prints the counts."""
    from rillet.redrive import redrive

    try:
        result = redrive(resolve_brokers(bootstrap), from_topic, to_topic,
                         filters=filters, group_id=group_id, limit=limit,
                         dry_run=dry_run, from_beginning=from_beginning,
                         timeout_s=timeout_ms / 1000)
    except ValueError as exc:  # a bad --filter (ConfigError)
        raise click.BadParameter(str(exc), param_hint="--filter") from None
    verb = "Would redrive" if dry_run else "Redrove"
    click.echo(f"{verb} {result.moved} record(s) from {from_topic} to {to_topic}; "
               f"{result.skipped} skipped by the filter (group {result.group_id}).")
    for reason, n in sorted(result.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  {n:>8}  {reason or '(no reason)'}")
