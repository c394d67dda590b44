"""``rillet quota set | list``: client quotas in kafka-configs.sh's vocabulary
(docs/security.md, "Quotas").

    rillet quota set --entity-type users --entity-name alice \\
        --add-config producer_byte_rate=1048576,consumer_byte_rate=2097152
    rillet quota set --entity-type clients --entity-default --add-config request_percentage=50
    rillet quota set --user alice --client loader --delete-config producer_byte_rate
    rillet quota list                       # every quota
    rillet quota list --entity-type users   # the users' (named and default)

One entity: ``--entity-type users|clients`` with ``--entity-name NAME`` or
``--entity-default``; or kafka-configs' shorthands ``--user NAME`` / ``--user-defaults`` and
``--client ID`` / ``--client-defaults`` (together: a user and client id pair).
"""

from __future__ import annotations

import click

from rillet.cli.topic import _admin, admin_options

_TYPES = {"users": "user", "clients": "client-id"}


def _entity(entity_type, entity_name, entity_default, user, user_defaults, client,
            client_defaults, need: bool = True) -> dict:
    out: dict = {}
    if entity_type:
        if (entity_name is None) == (not entity_default):
            raise click.UsageError("--entity-type needs --entity-name NAME or --entity-default")
        out[_TYPES[entity_type]] = None if entity_default else entity_name
    elif entity_name is not None or entity_default:
        raise click.UsageError("--entity-name / --entity-default need --entity-type")
    for kind, name, default in (("user", user, user_defaults), ("client-id", client,
                                                                client_defaults)):
        if name is not None and default:
            raise click.UsageError(f"give a {kind} name or its defaults, not both")
        if name is not None or default:
            if kind in out:
                raise click.UsageError(f"the {kind} is named twice")
            out[kind] = name
    if need and not out:
        raise click.UsageError("name an entity: --entity-type users|clients --entity-name "
                               "NAME (or --entity-default), or --user / --client")
    return out


def entity_options(f):
    for decorator in reversed((
        click.option("--entity-type", type=click.Choice(sorted(_TYPES)), default=None),
        click.option("--entity-name", default=None, metavar="NAME"),
        click.option("--entity-default", is_flag=True, help="The default entity of the type."),
        click.option("--user", default=None, metavar="NAME", help="A user (principal name)."),
        click.option("--user-defaults", is_flag=True, help="The default user."),
        click.option("--client", default=None, metavar="ID", help="A client id."),
        click.option("--client-defaults", is_flag=True, help="The default client id."),
    )):
        f = decorator(f)
    return admin_options(f)


def _show_entity(entity: dict) -> str:
    names = {"user": "user", "client-id": "client-id"}
    return " ".join(f"{names[k]}={'<default>' if v is None else v}"
                    for k, v in sorted(entity.items(), key=lambda kv: kv[0] != "user"))


def _show_value(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)


@click.group("quota")
def quota() -> None:
    """Set and list client quotas (producer_byte_rate, consumer_byte_rate,
    request_percentage, controller_mutation_rate)."""


@quota.command("set")
@entity_options
@click.option("--add-config", "add", default="", metavar="K=V,...",
              help="Quotas to set, e.g. producer_byte_rate=1048576.")
@click.option("--delete-config", "delete", default="", metavar="K,...",
              help="Quotas to remove.")
@click.option("--controller-mutation-rate", "mutation_rate", type=float, default=None,
              metavar="N", help="Partitions created or deleted per second (KIP-599); same as "
                                "--add-config controller_mutation_rate=N.")
def set_quota(add, delete, bootstrap, timeout_ms, mutation_rate, **o) -> None:
    """Set or remove quotas of one entity."""
    from rillet import ClientQuotaAlteration

    entity = _entity(**o)
    ops: dict = {}
    if mutation_rate is not None:
        ops["controller_mutation_rate"] = mutation_rate
    for item in filter(None, (s.strip() for s in add.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError(f"--add-config entry {item!r} is not KEY=VALUE")
        try:
            ops[key.strip()] = float(value)
        except ValueError:
            raise click.UsageError(f"{key.strip()}: {value!r} is not a number") from None
    for key in filter(None, (s.strip() for s in delete.split(","))):
        ops[key] = None
    if not ops:
        raise click.UsageError("nothing to do: give --add-config, --delete-config or "
                               "--controller-mutation-rate")
    with _admin(bootstrap) as admin:
        admin.alter_client_quotas([ClientQuotaAlteration(entity, ops)])
    for k, v in ops.items():
        what = "removed" if v is None else f"= {_show_value(v)}"
        click.echo(f"{_show_entity(entity)}: {k} {what}")


@quota.command("list")
@entity_options
def list_quotas(bootstrap, timeout_ms, entity_type, entity_name, entity_default, **o) -> None:
    """The quotas set (all, or those of the entity / entity type given)."""
    if entity_type and entity_name is None and not entity_default:
        flt: dict = {}  # every entity having this type: named or default
        kinds = {_TYPES[entity_type]}
    else:
        flt = _entity(entity_type, entity_name, entity_default, need=False, **o)
        kinds = set()
    with _admin(bootstrap) as admin:
        found = admin.describe_client_quotas(flt)
    found = [(e, v) for e, v in found if kinds <= set(e)]
    if not found:
        click.echo("No quotas match.")
    for entity, values in found:
        shown = ", ".join(f"{k}={_show_value(v)}" for k, v in sorted(values.items()))
        click.echo(f"{_show_entity(entity)}: {shown}")
