"""``rillet share-group``: list, describe, reset-offsets, delete and configure share groups
(the kafka-share-groups tool, plus rillet's per-state counts). Formats: docs/queues.md."""

from __future__ import annotations

import click

from rillet.cli.common import parse_kv
from rillet.cli.group import _fmt_tps
from rillet.cli.topic import _admin, _table, admin_options


@click.group("share-group")
def share_group() -> None:
    """List, describe, reset and delete share groups (queues); their configs."""


@share_group.command("list")
@admin_options
def list_(bootstrap, timeout_ms) -> None:
    """Every share group with its state."""
    with _admin(bootstrap) as admin:
        groups = admin.list_share_groups()
    _table(["GROUP", "STATE"], [(g.group_id, g.state) for g in groups])


def histogram(counts: dict[int, int]) -> str:
    """``{1: 120, 2: 5}`` -> ``"1:120 2:5"`` (delivery count: records)."""
    return " ".join(f"{c}:{n}" for c, n in sorted(counts.items())) or "-"


@share_group.command("describe")
@click.argument("group_id", metavar="GROUP")
@click.option("--members", is_flag=True, help="Only the members table.")
@click.option("--offsets", is_flag=True, help="Only the partitions table.")
@click.option("-t", "--topic", "topics", multiple=True,
              help="Partitions of these topics (default: the members' subscriptions).")
@admin_options
def describe(group_id, members, offsets, topics, bootstrap, timeout_ms) -> None:
    """Members and, per partition: share start offset, lag, records available / delayed /
    acquired / archived / dead-lettered, and a delivery-count histogram of in-flight
    records."""
    with _admin(bootstrap) as admin:
        d = admin.describe_share_group(group_id, topics or None)
    if d.state == "Dead" and not d.partitions:
        raise click.ClickException(f"share group {group_id!r} does not exist")
    if not offsets:
        click.echo(f"Share group '{group_id}': state {d.state}, {len(d.members)} member(s), "
                   f"coordinator {d.coordinator or '-'}, epoch {d.group_epoch}")
        if d.members:
            _table(["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"],
                   [(group_id, m.member_id, m.host or "-", m.client_id or "-",
                     len(m.assignment), _fmt_tps(m.assignment)) for m in d.members])
        if members:
            return
        click.echo("")
    _table(["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "END-OFFSET", "HW", "LAG",
            "AVAILABLE", "DELAYED", "ACQUIRED", "ARCHIVED", "DEAD-LETTERED", "DELIVERIES"],
           [(group_id, s.topic, s.partition, s.start_offset, s.end_offset, s.high_watermark,
             s.lag, s.available, s.delayed, s.acquired, s.archived, s.dead_lettered,
             histogram(s.delivery_counts)) for s in d.partitions.values()])


@share_group.command("reset-offsets")
@click.argument("group_id", metavar="GROUP")
@click.option("-t", "--topic", "topics", multiple=True, required=True,
              metavar="TOPIC[:P,...]", help="Topic (optionally some partitions); repeatable.")
@click.option("--to-earliest", is_flag=True)
@click.option("--to-latest", is_flag=True)
@click.option("--to-offset", type=click.IntRange(0), metavar="N")
@click.option("--execute", is_flag=True, help="Apply the plan (default: dry run).")
@admin_options
def reset_offsets(group_id, topics, to_earliest, to_latest, to_offset, execute, bootstrap,
                  timeout_ms) -> None:
    """Plan (and with --execute, apply) a new share start offset; drops the in-flight state
    of those partitions. The group must have no members."""
    from rillet._group_admin import EARLIEST as LO_EARLIEST
    from rillet._group_admin import LATEST as LO_LATEST
    from rillet._share_admin import EARLIEST, LATEST
    from rillet.cli.group import _parse_topic
    from rillet.records import TopicPartition

    chosen = [v for v in (to_earliest, to_latest, to_offset is not None) if v]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --to-earliest, --to-latest, --to-offset")
    with _admin(bootstrap) as admin:
        d = admin.describe_share_group(group_id, [])
        if d.members:
            raise click.ClickException(
                f"share group {group_id!r} has {len(d.members)} active member(s); offsets can "
                f"be reset only when it is inactive")
        tps = []
        for spec in topics:
            name, parts = _parse_topic(spec)
            if parts is None:
                parts = [x.partition for x in admin.describe_topics([name])[name].partitions]
            tps.extend(TopicPartition(name, x) for x in parts)
        starts = admin.list_offsets(tps, LO_EARLIEST)
        ends = admin.list_offsets(tps, LO_LATEST)
        if to_earliest:
            wire, shown = dict.fromkeys(tps, EARLIEST), starts
        elif to_latest:
            wire, shown = dict.fromkeys(tps, LATEST), ends
        else:
            shown = {tp: min(max(to_offset, starts[tp]), ends[tp]) for tp in tps}
            wire = shown
        if execute:
            admin.alter_share_group_offsets(group_id, wire)
    _table(["GROUP", "TOPIC", "PARTITION", "NEW-START-OFFSET"],
           [(group_id, tp.topic, tp.partition, o) for tp, o in sorted(shown.items())])
    if not execute:
        click.echo("Dry run: nothing changed. Add --execute to apply.", err=True)


@share_group.command("delete")
@click.argument("group_ids", nargs=-1, required=True, metavar="GROUP...")
@admin_options
def delete(group_ids, bootstrap, timeout_ms) -> None:
    """Delete inactive share groups and their share-partition state."""
    failed = False
    with _admin(bootstrap) as admin:
        for gid in group_ids:
            try:
                admin.delete_share_group(gid)
                click.echo(f"Deleted share group '{gid}'.")
            except Exception as exc:  # noqa: BLE001 - one line per group
                failed = True
                click.echo(f"Error: share group '{gid}': {exc}", err=True)
    if failed:
        raise SystemExit(1)


@share_group.command("configs")
@click.argument("group_id", metavar="GROUP")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a group config (share.delivery.count.limit=3, ...); repeatable.")
@click.option("--delete", "deletes", multiple=True, metavar="KEY",
              help="Revert a group config to the broker default; repeatable.")
@admin_options
def configs(group_id, sets, deletes, bootstrap, timeout_ms) -> None:
    """Show the group's configs, or change them with --set / --delete."""
    changes = parse_kv(sets, "--set")
    with _admin(bootstrap) as admin:
        if changes or deletes:
            admin.alter_group_configs(group_id, set=changes, delete=deletes)
            shown = [f"{k}={v}" for k, v in changes.items()] + [f"{k}=(default)"
                                                                for k in deletes]
            click.echo(f"Updated configs of share group '{group_id}': " + ", ".join(shown))
            return
        entries = admin.describe_group_configs(group_id)
    _table(["KEY", "VALUE", "SOURCE"],
           [(e.name, e.value if e.value is not None else "-",
             "default" if e.is_default else "group") for e in entries.values()])
