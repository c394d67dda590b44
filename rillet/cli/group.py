"""``rillet group``: list, describe, reset-offsets and delete consumer groups (the
kafka-consumer-groups tool). Output formats: docs/consumer-groups.md."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import click

from rillet.cli.topic import _admin, _table, admin_options


@click.group("group")
def group() -> None:
    """List, describe, reset the offsets of and delete consumer groups."""


@group.command("list")
@click.option("--state", "states", multiple=True,
              help="Only groups in this state (Empty, Reconciling, Stable, ...; repeatable).")
@admin_options
def list_(states, bootstrap, timeout_ms) -> None:
    """Every consumer group with its state."""
    with _admin(bootstrap) as admin:
        groups = admin.list_groups(states or None)
    _table(["GROUP", "STATE"], [(g.group_id, g.state) for g in groups])


@group.command("describe")
@click.argument("group_id", metavar="GROUP")
@click.option("--members", is_flag=True, help="One row per member.")
@click.option("--state", "state_view", is_flag=True, help="The group's state, coordinator, "
                                                          "assignor and size.")
@click.option("-v", "--verbose", is_flag=True, help="With --members: the partitions too.")
@admin_options
def describe(group_id, members, state_view, verbose, bootstrap, timeout_ms) -> None:
    """Offsets and lag per partition (default), or --members, or --state."""
    with _admin(bootstrap) as admin:
        d = admin.describe_groups([group_id])[group_id]
        if d.state == "Dead":
            raise click.ClickException(f"consumer group {group_id!r} does not exist")
        if state_view:
            _table(["GROUP", "COORDINATOR", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
                   [(group_id, d.coordinator, d.assignor, d.state, len(d.members))])
            return
        if not d.members:
            click.echo(f"Consumer group '{group_id}' has no active members.\n", err=True)
        if members:
            headers = ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
            rows = []
            for m in d.members:
                row = [group_id, m.member_id, m.host or "-", m.client_id or "-",
                       len(m.assignment)]
                if verbose:
                    row += [m.member_epoch, _fmt_tps(m.assignment)]
                rows.append(tuple(row))
            _table(headers + (["EPOCH", "ASSIGNMENT"] if verbose else []), rows)
            return
        committed = admin.list_consumer_group_offsets(group_id)
        owner = {tp: m for m in d.members for tp in m.assignment}
        tps = sorted(set(committed) | set(owner))
        ends = admin.list_offsets(tps) if tps else {}
    rows = []
    for tp in tps:
        cur = committed.get(tp)
        end = ends.get(tp)
        m = owner.get(tp)
        rows.append((group_id, tp.topic, tp.partition, "-" if cur is None else cur,
                     "-" if end is None else end,
                     "-" if cur is None or end is None else max(0, end - cur),
                     m.member_id if m else "-", (m.host or "-") if m else "-",
                     (m.client_id or "-") if m else "-"))
    _table(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
            "CONSUMER-ID", "HOST", "CLIENT-ID"], rows)


def _fmt_tps(tps) -> str:
    by_topic: dict[str, list[str]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(str(tp.partition))
    return ",".join(f"{t}:{'/'.join(ps)}" for t, ps in by_topic.items()) or "-"


_DURATION = re.compile(r"^-?P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration_ms(text: str) -> int:
    """ISO-8601 duration as Kafka's --by-duration takes it (``PT1H30M``, ``P1DT2H``, ``-PT5M``
    is accepted as the same as ``PT5M``): milliseconds."""
    m = _DURATION.match(text.strip().upper())
    if not m or text.strip().upper() in ("P", "PT", "-P", "-PT"):
        raise click.BadParameter(f"{text!r}: use an ISO-8601 duration like PT1H or P1DT30M",
                                 param_hint="--by-duration")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    return int(((days * 24 + hours) * 60 + minutes) * 60_000 + seconds * 1000)


def parse_datetime_ms(text: str) -> int:
    """``YYYY-MM-DDTHH:mm:SS[.sss][Z|+hh:mm]`` (UTC when no zone is given): ms since epoch."""
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: use YYYY-MM-DDTHH:mm:SS.sss (UTC unless a zone "
                                 "is given)", param_hint="--to-datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _parse_topic(spec: str) -> tuple[str, list[int] | None]:
    name, _, parts = spec.partition(":")
    if not parts:
        return name, None
    try:
        return name, [int(x) for x in parts.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{spec!r}: use TOPIC or TOPIC:0,1,2",
                                 param_hint="--topic") from None


@group.command("reset-offsets")
@click.option("-g", "--group", "group_id", required=True, metavar="GROUP")
@click.option("-t", "--topic", "topics", multiple=True, metavar="TOPIC[:P,...]",
              help="Topic (optionally some partitions); repeatable.")
@click.option("--all-topics", is_flag=True, help="Every topic the group has offsets for.")
@click.option("--to-earliest", is_flag=True)
@click.option("--to-latest", is_flag=True)
@click.option("--to-offset", type=int, metavar="N")
@click.option("--shift-by", type=int, metavar="N", help="Move by N (negative: back).")
@click.option("--to-datetime", metavar="YYYY-MM-DDTHH:mm:SS.sss")
@click.option("--by-duration", metavar="PnDTnHnMnS", help="To this long ago.")
@click.option("--execute", is_flag=True, help="Apply the plan (default: dry run).")
@admin_options
def reset_offsets(group_id, topics, all_topics, to_earliest, to_latest, to_offset, shift_by,
                  to_datetime, by_duration, execute, bootstrap, timeout_ms) -> None:
    """Plan (and with --execute, apply) new committed offsets. The group must be inactive."""
    from rillet._group_admin import EARLIEST, LATEST
    from rillet.records import TopicPartition

    chosen = [name for name, v in (("--to-earliest", to_earliest), ("--to-latest", to_latest),
                                   ("--to-offset", to_offset), ("--shift-by", shift_by),
                                   ("--to-datetime", to_datetime),
                                   ("--by-duration", by_duration))
              if v not in (None, False)]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --to-earliest, --to-latest, --to-offset, "
                               "--shift-by, --to-datetime, --by-duration")
    if bool(topics) == all_topics:
        raise click.UsageError("give --topic TOPIC[:P,...] (repeatable) or --all-topics")
    with _admin(bootstrap) as admin:
        d = admin.describe_groups([group_id])[group_id]
        if d.members:
            raise click.ClickException(
                f"consumer group {group_id!r} has {len(d.members)} active member(s) (state "
                f"{d.state}); offsets can be reset only when it is inactive")
        committed = admin.list_consumer_group_offsets(group_id)
        if all_topics:
            tps = sorted(committed)
        else:
            tps = []
            for spec in topics:
                name, parts = _parse_topic(spec)
                if parts is None:
                    n = admin.describe_topics([name])[name]
                    parts = [p.partition for p in n.partitions]
                tps.extend(TopicPartition(name, p) for p in parts)
        if not tps:
            raise click.ClickException(f"nothing to reset for group {group_id!r}")
        starts = admin.list_offsets(tps, EARLIEST)
        ends = admin.list_offsets(tps, LATEST)
        if to_earliest:
            plan = dict(starts)
        elif to_latest:
            plan = dict(ends)
        elif to_offset is not None:
            plan = dict.fromkeys(tps, to_offset)
        elif shift_by is not None:
            plan = {tp: committed.get(tp, ends[tp]) + shift_by for tp in tps}
        else:
            ts = parse_datetime_ms(to_datetime) if to_datetime else (
                _now_ms() - parse_duration_ms(by_duration))
            found = admin.list_offsets(tps, ts)
            plan = {tp: ends[tp] if found[tp] < 0 else found[tp] for tp in tps}
        plan = {tp: min(max(o, starts[tp]), ends[tp]) for tp, o in plan.items()}
        if execute:
            admin.alter_consumer_group_offsets(group_id, plan)
    _table(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
           [(group_id, tp.topic, tp.partition, o) for tp, o in sorted(plan.items())])
    if not execute:
        click.echo("Dry run: nothing changed. Add --execute to apply.", err=True)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


@group.command("delete")
@click.argument("group_ids", nargs=-1, required=True, metavar="GROUP...")
@admin_options
def delete(group_ids, bootstrap, timeout_ms) -> None:
    """Delete inactive groups and their committed offsets."""
    with _admin(bootstrap) as admin:
        results = admin.delete_groups(group_ids, raise_errors=False)
    failed = False
    for gid, error in results.items():
        if error is None:
            click.echo(f"Deleted consumer group '{gid}'.")
        else:
            failed = True
            click.echo(f"Error: group '{gid}': {error}", err=True)
    if failed:
        raise SystemExit(1)


@group.command("translate-offsets")
@click.option("--from", "source", required=True, help="Alias of the cluster the group ran on.")
@click.option("--to", "target", required=True, help="Alias of the cluster to fail over to "
                                                     "(its brokers: --bootstrap-server).")
@click.option("--group", "group_id", required=True, help="The consumer group.")
@click.option("--apply", is_flag=True, help="Commit the translated offsets on the target.")
@click.option("--mirror-config", type=click.Path(exists=True, dir_okay=False),
              help="The mirror's mm2.properties: the target's address and client settings "
                   "(<to>.bootstrap.servers, <to>.security.protocol, <to>.curve.*, ...).")
@click.option("--command-config", type=click.Path(exists=True, dir_okay=False),
              help="A properties file of client settings for the target "
                   "(security.protocol=CURVE, curve.client.keyfile, curve.server.publickey, "
                   "...), as Kafka's tools take; wins over --mirror-config.")
@admin_options
def translate_offsets(source, target, group_id, apply, mirror_config, command_config,
                      bootstrap, timeout_ms) -> None:
    """Offsets of GROUP on the target, translated by the mirror's checkpoints
    (MirrorMaker's RemoteClusterUtils; docs/mirror.md). A CURVE target is reached with
    --mirror-config or --command-config (else the profile's settings apply)."""
    from rillet.admin import Admin
    from rillet.cli.common import resolve_brokers
    from rillet.connectors.mirror.policy import MirrorConfigError
    from rillet.connectors.mirror.remote import failover_client
    from rillet.connectors.mirror.remote import translate_offsets as translate
    from rillet.errors import ConfigError

    try:
        client = failover_client(source, target, bootstrap=bootstrap,
                                 mirror_config=mirror_config, command_config=command_config)
        if not client.get("bootstrap.servers"):
            client["bootstrap.servers"] = resolve_brokers(None)
        client.setdefault("request.timeout.ms", str(timeout_ms))
        admin = Admin(client)
    except (MirrorConfigError, ConfigError, OSError) as e:
        raise click.ClickException(str(e)) from None
    with admin:
        offsets = translate(client, source, group_id)
        if not offsets:
            raise click.ClickException(f"no checkpoint of group {group_id!r} from {source} "
                                       f"on {target}")
        if apply:
            admin.alter_consumer_group_offsets(group_id, offsets)
    _table(["TOPIC", "PARTITION", "OFFSET"], [(tp.topic, tp.partition, o)
                                             for tp, o in sorted(offsets.items())])
