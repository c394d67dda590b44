"""``rillet acl add | list | remove``: ACLs in kafka-acls.sh's vocabulary (docs/security.md).

    rillet acl add --allow-principal User:alice --operation Write --topic orders \\
        --resource-pattern-type prefixed
    rillet acl add --allow-principal User:bob --consumer --topic orders --group billing
    rillet acl list --principal User:alice
    rillet acl remove --allow-principal User:alice --operation Write --topic orders \\
        --resource-pattern-type prefixed

``add`` and ``remove`` name whole bindings: every (principal, host, operation) of the options
on every resource named (``--topic``, ``--group``, ``--transactional-id``, ``--cluster``).
``list`` and ``remove`` given only some options act on every binding that matches them
(kafka-acls.sh's filters; ``--resource-pattern-type match`` lists what applies to a name).
"""

from __future__ import annotations

import re

import click

from rillet.cli.topic import _admin, admin_options

_OPS = ("All", "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
        "DescribeConfigs", "AlterConfigs", "IdempotentWrite")
_CLUSTER = "kafka-cluster"


def _snake(name: str) -> str:
    """kafka-acls.sh's CamelCase names -> Kafka's enum names (IdempotentWrite ->
    IDEMPOTENT_WRITE); already upper-case names pass."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).upper()


def resource_options(f):
    for decorator in reversed((
        click.option("--topic", "topics", multiple=True, help="A topic (repeatable)."),
        click.option("--group", "groups", multiple=True, help="A consumer/share group."),
        click.option("--transactional-id", "txn_ids", multiple=True,
                     help="A transactional id."),
        click.option("--cluster", is_flag=True, help="The cluster resource."),
        click.option("--resource-pattern-type", "pattern",
                     type=click.Choice(["literal", "prefixed", "any", "match"],
                                       case_sensitive=False),
                     default=None, help="How the resource names match (default literal; "
                     "list/remove: any)."),
        click.option("--operation", "operations", multiple=True,
                     type=click.Choice(_OPS, case_sensitive=False),
                     help="An operation (repeatable)."),
        click.option("--allow-principal", "allow", multiple=True, metavar="User:NAME"),
        click.option("--deny-principal", "deny", multiple=True, metavar="User:NAME"),
        click.option("--allow-host", "allow_hosts", multiple=True, metavar="HOST",
                     help="Default: * (any)."),
        click.option("--deny-host", "deny_hosts", multiple=True, metavar="HOST",
                     help="Default: * (any)."),
    )):
        f = decorator(f)
    return admin_options(f)


def _resources(topics, groups, txn_ids, cluster) -> list[tuple[str, str]]:
    out = [("TOPIC", t) for t in topics] + [("GROUP", g) for g in groups]
    out += [("TRANSACTIONAL_ID", t) for t in txn_ids]
    if cluster:
        out.append(("CLUSTER", _CLUSTER))
    return out


def _grants(allow, deny, allow_hosts, deny_hosts) -> list[tuple[str, str, str]]:
    """(permission, principal, host) of the options."""
    out = [("ALLOW", p, h) for p in allow for h in (allow_hosts or ("*",))]
    out += [("DENY", p, h) for p in deny for h in (deny_hosts or ("*",))]
    return out


def _bindings(o: dict, producer: bool = False, consumer: bool = False,
              idempotent: bool = False) -> list:
    from rillet import AclBinding

    resources = _resources(o["topics"], o["groups"], o["txn_ids"], o["cluster"])
    grants = _grants(o["allow"], o["deny"], o["allow_hosts"], o["deny_hosts"])
    if not resources:
        raise click.UsageError("name a resource: --topic, --group, --transactional-id or "
                               "--cluster")
    if not grants:
        raise click.UsageError("name a principal: --allow-principal or --deny-principal")
    ops = [_snake(op) for op in o["operations"]]
    pattern = (o["pattern"] or "literal").upper()
    if pattern not in ("LITERAL", "PREFIXED"):
        raise click.UsageError("add/remove of a binding: --resource-pattern-type is literal "
                               "or prefixed")
    wanted: list[tuple[str, str, str]] = []  # (resource type, name, operation)
    if producer or consumer:  # kafka-acls.sh's conveniences
        for rtype, name in resources:
            if rtype == "TOPIC":
                wanted += [(rtype, name, op) for op in
                           (("WRITE", "DESCRIBE", "CREATE") if producer else ())
                           + (("READ", "DESCRIBE") if consumer else ())]
            elif rtype == "GROUP" and consumer:
                wanted.append((rtype, name, "READ"))
            elif rtype == "TRANSACTIONAL_ID" and producer:
                wanted += [(rtype, name, "WRITE"), (rtype, name, "DESCRIBE")]
        if producer and idempotent:
            wanted.append(("CLUSTER", _CLUSTER, "IDEMPOTENT_WRITE"))
    elif not ops:
        raise click.UsageError("name an --operation (or --producer / --consumer)")
    wanted += [(rtype, name, op) for rtype, name in resources for op in ops]
    out = []
    for rtype, name, op in dict.fromkeys(wanted):
        for permission, principal, host in grants:
            out.append(AclBinding(rtype, name, principal, op, permission,
                                  "LITERAL" if rtype == "CLUSTER" else pattern, host))
    return out


def _filters(o: dict, principal: str | None = None) -> list:
    from rillet import AclBindingFilter

    resources = _resources(o["topics"], o["groups"], o["txn_ids"], o["cluster"])
    principals = [("ALLOW", p) for p in o["allow"]] + [("DENY", p) for p in o["deny"]]
    if principal:
        principals.append(("ANY", principal))
    ops = [_snake(op) for op in o["operations"]] or ["ANY"]
    pattern = (o["pattern"] or "any").upper()
    out = []
    for rtype, name in resources or [("ANY", None)]:
        for permission, who in principals or [("ANY", None)]:
            for op in ops:
                out.append(AclBindingFilter(
                    resource_type=rtype, resource_name=name,
                    pattern_type="LITERAL" if rtype == "CLUSTER" and pattern == "ANY"
                    else pattern, principal=who, operation=op, permission=permission))
    return out


def _show(b) -> str:
    return (f"{b.permission:<5} {b.principal:<18} {b.operation:<16} {b.resource_type} "
            f"{b.pattern_type.lower()}:{b.resource_name}  host={b.host}")


@click.group("acl")
def acl() -> None:
    """Add, list and remove ACLs (a cluster run with authorizer.class.name=rillet)."""


@acl.command("add")
@resource_options
@click.option("--producer", is_flag=True, help="WRITE, DESCRIBE, CREATE on the topics "
              "(WRITE, DESCRIBE on the transactional ids).")
@click.option("--consumer", is_flag=True, help="READ, DESCRIBE on the topics, READ on the "
              "groups.")
@click.option("--idempotent", is_flag=True, help="With --producer: IDEMPOTENT_WRITE on the "
              "cluster.")
def add(producer, consumer, idempotent, bootstrap, timeout_ms, **o) -> None:
    """Add the ACL bindings the options name."""
    bindings = _bindings(o, producer, consumer, idempotent)
    with _admin(bootstrap) as admin:
        admin.create_acls(bindings)
    click.echo(f"Added {len(bindings)} ACL binding(s):")
    for b in bindings:
        click.echo("  " + _show(b))


@acl.command("list")
@resource_options
@click.option("--principal", default=None, metavar="User:NAME",
              help="Only the bindings of this principal (allow or deny).")
def list_acls(principal, bootstrap, timeout_ms, **o) -> None:
    """List the ACL bindings that match the options (all without options)."""
    with _admin(bootstrap) as admin:
        found = {b: None for f in _filters(o, principal) for b in admin.describe_acls(f)}
    if not found:
        click.echo("No ACLs match.")
        return
    for b in found:
        click.echo(_show(b))


@acl.command("remove")
@resource_options
@click.option("--principal", default=None, metavar="User:NAME",
              help="Every binding of this principal (with the other options).")
def remove(principal, bootstrap, timeout_ms, **o) -> None:
    """Remove the ACL bindings that match the options."""
    if not (o["topics"] or o["groups"] or o["txn_ids"] or o["cluster"] or o["allow"]
            or o["deny"] or principal):
        raise click.UsageError("name what to remove (a resource or a principal); "
                               "`rillet acl list` shows the bindings")
    with _admin(bootstrap) as admin:
        removed = {b: None for r in admin.delete_acls(_filters(o, principal)) for b in r}
    click.echo(f"Removed {len(removed)} ACL binding(s):")
    for b in removed:
        click.echo("  " + _show(b))
