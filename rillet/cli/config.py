"""``rillet config describe|alter --broker N | --broker-defaults`` (kafka-configs.sh
``--entity-type brokers``): dynamic broker configs, applied by running brokers without a
restart (docs/operations.md, "Dynamic broker configs")."""

from __future__ import annotations

import click

from rillet.cli.common import parse_kv
from rillet.cli.topic import _admin, _table, admin_options

_DYNAMIC = ("DYNAMIC_BROKER_CONFIG", "DYNAMIC_DEFAULT_BROKER_CONFIG")


def _target(f):
    f = click.option("--broker-defaults", "defaults", is_flag=True,
                     help="The cluster-wide default of every broker (kafka-configs "
                          "--entity-default).")(f)
    return click.option("--broker", "broker_id", type=click.IntRange(0), metavar="ID",
                        help="One broker (its own values win over the defaults).")(f)


def _broker(broker_id: int | None, defaults: bool) -> int | None:
    if (broker_id is None) == (not defaults):
        raise click.UsageError("give exactly one of --broker ID and --broker-defaults")
    return broker_id


@click.group("config")
def config() -> None:
    """Describe and alter dynamic broker configs (kafka-configs.sh --entity-type brokers)."""


@config.command("describe")
@_target
@click.option("--all", "show_all", is_flag=True,
              help="Every config of the broker, static and default ones too.")
@admin_options
def describe(broker_id, defaults, show_all, bootstrap, timeout_ms) -> None:
    """The broker's dynamic configs (with --all: every config and where it comes from)."""
    broker = _broker(broker_id, defaults)
    with _admin(bootstrap) as admin:
        entries = admin.describe_broker_configs(broker)
    shown = [e for e in entries.values() if show_all or e.source in _DYNAMIC]
    who = f"broker {broker}" if broker is not None else "the cluster-wide broker default"
    if not shown:
        click.echo(f"No dynamic configs for {who}.")
        return
    _table(["KEY", "VALUE", "SOURCE"],
           [(e.name, e.value if e.value is not None else "-", e.source) for e in shown])


@config.command("alter")
@_target
@click.option("--set", "--add-config", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a dynamic broker config (repeatable).")
@click.option("--delete", "--delete-config", "deletes", multiple=True, metavar="KEY",
              help="Remove a dynamic value: back to the default or static value (repeatable).")
@admin_options
def alter(broker_id, defaults, sets, deletes, bootstrap, timeout_ms) -> None:
    """Change dynamic broker configs, all or none; running brokers apply them at once."""
    broker = _broker(broker_id, defaults)
    changes = parse_kv(sets, "--set")
    if not changes and not deletes:
        raise click.UsageError("nothing to alter: give --set KEY=VALUE or --delete KEY")
    with _admin(bootstrap) as admin:
        admin.alter_broker_configs(broker, set=changes, delete=deletes)
    if broker is None:
        click.echo("Completed updating default config for brokers in the cluster.")
    else:
        click.echo(f"Completed updating config for broker {broker}.")
