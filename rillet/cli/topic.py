"""``rillet topic create|list|describe|alter|delete`` (kafka-topics.sh's outputs), and
``reassign`` / ``elect-leaders`` (kafka-reassign-partitions.sh, kafka-leader-election.sh)."""

from __future__ import annotations

import json
import sys

import click

from rillet.cli.common import bootstrap_option, parse_kv, resolve_brokers


def _admin(bootstrap: str | None):
    from rillet.admin import Admin

    timeout_ms = click.get_current_context().params.get("timeout_ms") or 15000
    return Admin({"bootstrap.servers": resolve_brokers(bootstrap),
                  "request.timeout.ms": timeout_ms})


def admin_options(f):
    f = click.option("--timeout-ms", type=click.IntRange(1), default=15000, show_default=True,
                     help="How long to wait for the brokers.")(f)
    return bootstrap_option(f)


@click.group("topic")
def topic() -> None:
    """Create, list, describe, alter and delete topics."""


@topic.command("create")
@click.argument("names", nargs=-1, required=True)
@click.option("-p", "--partitions", type=click.IntRange(1), help="Partition count "
              "(default: the broker's num.partitions).")
@click.option("-r", "--replication-factor", type=click.IntRange(1),
              help="Replicas per partition (default: the broker's default.replication.factor).")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Topic config, e.g. retention.ms=60000 (repeatable).")
@click.option("--if-not-exists", is_flag=True, help="Succeed if the topic already exists.")
@admin_options
def create(names, partitions, replication_factor, configs, if_not_exists, bootstrap,
           timeout_ms) -> None:
    """Create topics: `rillet topic create orders -p 3 -r 1 -c retention.ms=60000`."""
    from rillet.errors import TopicAlreadyExistsError
    from rillet.records import NewTopic

    cfg = parse_kv(configs, "--config")
    new = [NewTopic(n, partitions or -1, replication_factor or -1, cfg) for n in names]
    with _admin(bootstrap) as admin:
        results = admin.create_topics(new, raise_errors=False)
    _exit_with_results(names, results, "Created topic {}.", "creating",
                       TopicAlreadyExistsError if if_not_exists else None, "Topic {} already exists.")


@topic.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("-l", "--long", "long_", is_flag=True, help="NAME PARTITIONS REPLICAS table.")
@admin_options
def list_(fmt, long_, bootstrap, timeout_ms) -> None:
    """Topic names, one per line."""
    with _admin(bootstrap) as admin:
        if not long_ and fmt == "text":
            for name in admin.list_topics():
                click.echo(name)
            return
        desc = admin.describe_topics(None)
    rows = [(d.name, len(d.partitions), d.replication_factor) for d in desc.values()
            if not d.is_internal]
    if fmt == "json":
        click.echo(json.dumps([{"name": n, "partitions": p, "replicas": r} for n, p, r in rows]))
        return
    _table(["NAME", "PARTITIONS", "REPLICAS"], rows)


@topic.command("describe")
@click.argument("names", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--all", "all_", is_flag=True, help="Every topic (internal ones too) with "
              "every config: the effective value of each, defaults included.")
@admin_options
def describe(names, fmt, all_, bootstrap, timeout_ms) -> None:
    """Partitions with leader, replicas and ISR (kafka-topics --describe layout)."""
    if all_ and names:
        raise click.UsageError("--all describes every topic: give no topic names with it")
    with _admin(bootstrap) as admin:
        desc = admin.describe_topics(list(names) if names else None)
        desc = {n: d for n, d in desc.items() if names or all_ or not d.is_internal}
        configs = admin.describe_configs(list(desc)) if desc else {}
    if fmt == "json":
        click.echo(json.dumps([{
            "name": d.name, "topic_id": d.topic_id,
            "configs": {k: e.value for k, e in configs.get(d.name, {}).items()
                        if all_ or not e.is_default},
            "partitions": [{"partition": p.partition, "leader": p.leader,
                            "leader_epoch": p.leader_epoch, "replicas": list(p.replicas),
                            "isr": list(p.isr), "damaged": list(p.damaged),
                            "offline_reason": p.offline_reason} for p in d.partitions]}
            for d in desc.values()], indent=2))
        return
    for d in desc.values():
        overrides = ",".join(f"{k}={e.value}" for k, e in configs.get(d.name, {}).items()
                             if all_ or not e.is_default)
        click.echo(f"Topic: {d.name}\tTopicId: {d.topic_id or '-'}\t"
                   f"PartitionCount: {len(d.partitions)}\t"
                   f"ReplicationFactor: {d.replication_factor}\tConfigs: {overrides}")
        for p in d.partitions:
            leader = p.leader if p.leader >= 0 else "none"
            if p.leader < 0 and p.offline_reason:
                leader = f"none ({p.offline_reason})"
            damaged = f"\tDamaged: {_ids(p.damaged)}" if p.damaged else ""
            click.echo(f"\tTopic: {d.name}\tPartition: {p.partition}\tLeader: {leader}\t"
                       f"Replicas: {_ids(p.replicas)}\tIsr: {_ids(p.isr)}{damaged}")


@topic.command("alter")
@click.argument("name")
@click.option("-p", "--partitions", type=click.IntRange(1), help="New total partition count.")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Set a topic config (repeatable).")
@click.option("-d", "--delete-config", "deletes", multiple=True, metavar="KEY",
              help="Revert a topic config to its default (repeatable).")
@admin_options
def alter(name, partitions, configs, deletes, bootstrap, timeout_ms) -> None:
    """Grow partitions and/or change topic configs."""
    if partitions is None and not configs and not deletes:
        raise click.UsageError("nothing to alter: give --partitions, --config or --delete-config")
    changes: dict[str, str | None] = dict(parse_kv(configs, "--config"))
    changes.update({k: None for k in deletes})
    with _admin(bootstrap) as admin:
        if partitions is not None:
            admin.create_partitions({name: partitions})
            click.echo(f"Topic {name} now has {partitions} partitions.")
        if changes:
            admin.alter_configs({name: changes})
            click.echo(f"Completed updating config for topic {name}.")


@topic.command("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("--if-exists", is_flag=True, help="Succeed if a topic does not exist.")
@admin_options
def delete(names, if_exists, bootstrap, timeout_ms) -> None:
    """Delete topics and their data."""
    from rillet.errors import UnknownTopicOrPartitionError

    with _admin(bootstrap) as admin:
        results = admin.delete_topics(list(names), raise_errors=False)
    _exit_with_results(names, results, "Deleted topic {}.", "deleting",
                       UnknownTopicOrPartitionError if if_exists else None,
                       "Topic {} does not exist.")


@topic.command("reassign")
@click.argument("name")
@click.argument("partition", type=click.IntRange(0))
@click.option("--replicas", metavar="ID,ID,...",
              help="Target replica list (the first is the preferred leader).")
@click.option("--cancel", is_flag=True, help="Cancel an ongoing reassignment.")
@admin_options
def reassign(name, partition, replicas, cancel, bootstrap, timeout_ms) -> None:
    """Move a partition to other brokers (the new replicas copy the data and join the ISR
    before the old ones are removed)."""
    if cancel == bool(replicas):
        raise click.UsageError("give either --replicas ID,ID,... or --cancel")
    target = None
    if replicas:
        try:
            target = [int(b) for b in replicas.split(",") if b.strip()]
        except ValueError:
            raise click.UsageError(
                f"--replicas {replicas!r}: broker ids, comma-separated") from None
    with _admin(bootstrap) as admin:
        results = admin.alter_partition_reassignments({(name, partition): target},
                                                      raise_errors=False)
    error = results.get((name, partition))
    if error is not None:
        click.echo(f"Error reassigning {name}-{partition}: {error}", err=True)
        sys.exit(1)
    what = "Cancelled the reassignment of" if cancel else "Started reassigning"
    click.echo(f"{what} {name}-{partition}" + (f" to {target}." if target else "."))


@topic.command("elect-leaders")
@click.argument("partitions", nargs=-1, metavar="[TOPIC[:PARTITION]]...")
@admin_options
def elect_leaders(partitions, bootstrap, timeout_ms) -> None:
    """Preferred-leader election: leadership back to each partition's first replica if it
    is in sync. No argument: every partition."""
    selected = None
    with _admin(bootstrap) as admin:
        if partitions:
            selected = []
            for spec in partitions:
                name, _, num = spec.partition(":")
                if num:
                    if not num.isdigit():
                        raise click.UsageError(f"{spec!r}: expected TOPIC or TOPIC:PARTITION")
                    selected.append((name, int(num)))
                else:
                    desc = admin.describe_topics([name])[name]
                    selected += [(name, p.partition) for p in desc.partitions]
        results = admin.elect_leaders(selected, raise_errors=False)
    failed = False
    for (name, num), error in sorted(results.items()):
        if error is None:
            click.echo(f"Successfully elected the preferred leader for {name}-{num}.")
        elif error.code == 84:  # ELECTION_NOT_NEEDED
            click.echo(f"{name}-{num}: the preferred leader already leads.")
        else:
            failed = True
            click.echo(f"Error electing the preferred leader for {name}-{num}: {error}",
                       err=True)
    if not results:
        click.echo("Every partition is led by its preferred leader.")
    sys.exit(1 if failed else 0)


def _ids(ids) -> str:
    return ",".join(str(i) for i in ids) if ids else "-"


def _table(headers: list[str], rows: list[tuple]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _exit_with_results(names, results, done: str, doing: str, tolerated: type | None,
                       tolerated_message: str) -> None:
    """One line per topic (errors on stderr); exit 1 if any failed. An error of type
    ``tolerated`` (--if-exists / --if-not-exists) is reported, not failed."""
    failed = False
    for name in names:
        error = results.get(name)
        if error is None:
            click.echo(done.format(name))
        elif tolerated is not None and isinstance(error, tolerated):
            click.echo(tolerated_message.format(name))
        else:
            failed = True
            click.echo(f"Error while {doing} topic {name}: {error}", err=True)
    sys.exit(1 if failed else 0)
