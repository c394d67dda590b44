"""``rillet broker start --config server.properties``: one broker in the foreground, on a
host of a multi-host cluster; ``rillet cluster init``: the per-host server.properties of an
N-host cluster. Kafka's key names (actors/server_properties.py; docs/operations.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rillet.cli.common import parse_kv


@click.group("broker")
def broker() -> None:
    """Run one broker of a multi-host cluster (docs/operations.md)."""


@broker.command("start")
@click.option("--config", "config_file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Kafka-style server.properties (node.id, log.dirs, listeners, ...).")
@click.option("-c", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a key of the file (repeatable).")
@click.option("--check", is_flag=True, help="Validate the file and exit.")
def start(config_file: Path, overrides: tuple[str, ...], check: bool) -> None:
    """Run the broker that CONFIG describes until SIGTERM / Ctrl-C."""
    from rillet.actors.server_properties import ServerPropertiesError, load_server_properties

    try:
        settings = load_server_properties(config_file, parse_kv(overrides, "-c"))
    except ServerPropertiesError as e:
        for problem in e.problems:
            click.echo(f"Error: {problem}", err=True)
        sys.exit(2)
    if check:
        click.echo(f"{config_file}: OK (node.id={settings.node_id}, log.dirs={settings.data_dir},"
                   f" client listener {settings.listen})")
        return
    from rillet.actors import node

    sys.exit(node.run(settings.node_id, settings.data_dir, settings.listen, settings.configs,
                      settings.internal_listen))


def _properties(node_id: int, hosts: list[str], voters: str, data_dir: str, client_port: int,
                broker_port: int, controllers: int) -> str:
    host = hosts[node_id - 1]
    roles = "broker,controller" if node_id <= controllers else "broker"
    return "\n".join([
        f"# rillet broker {node_id} of {len(hosts)} on {host} (written by rillet cluster init)",
        "# run: rillet broker start --config server.properties",
        f"node.id={node_id}",
        f"process.roles={roles}",
        f"controller.quorum.voters={voters}",
        f"listeners=CLIENT://0.0.0.0:{client_port},BROKER://0.0.0.0:{broker_port}",
        f"advertised.listeners=CLIENT://{host}:{client_port},BROKER://{host}:{broker_port}",
        f"log.dirs={data_dir}",
        f"default.replication.factor={min(3, len(hosts))}",
        f"min.insync.replicas={min(2, len(hosts))}",
        f"offsets.topic.replication.factor={min(3, len(hosts))}",
        "log.retention.hours=168",
        "# the inter-broker listener's CURVE key pair (same file on every host; see",
        "# docs/cluster.md). Without it the BROKER listener is plain TCP: firewall it.",
        "#inter.broker.curve.keyfile=/etc/rillet/cluster.key",
        "",
    ])


@click.command("init")
@click.option("--hosts", required=True,
              help="Comma-separated host names or IPs, one broker each (node.id 1, 2, ...).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("rillet-cluster"), show_default=True,
              help="Writes OUT/<host>/server.properties.")
@click.option("--log-dir", default="/var/lib/rillet", show_default=True,
              help="log.dirs on each host.")
@click.option("--client-port", type=click.IntRange(1, 65535), default=9092, show_default=True)
@click.option("--broker-port", type=click.IntRange(1, 65535), default=9093, show_default=True)
@click.option("--controllers", type=click.IntRange(1, 9), default=3, show_default=True,
              help="How many of the first hosts are controller voters.")
def init(hosts: str, out_dir: Path, log_dir: str, client_port: int, broker_port: int,
         controllers: int) -> None:
    """Write the server.properties of each host of an N-host cluster."""
    names = [h.strip() for h in hosts.split(",") if h.strip()]
    if not names:
        raise click.BadParameter("give at least one host", param_hint="--hosts")
    if len(set(names)) != len(names):
        raise click.BadParameter("a host is listed twice", param_hint="--hosts")
    if client_port == broker_port:
        raise click.BadParameter("must differ from --client-port", param_hint="--broker-port")
    controllers = min(controllers, len(names))
    voters = ",".join(f"{i}@{h}:{broker_port}" for i, h in enumerate(names[:controllers], 1))
    for i, host in enumerate(names, 1):
        path = out_dir / host / "server.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_properties(i, names, voters, log_dir, client_port, broker_port,
                                    controllers))
        click.echo(f"wrote {path}")
    bootstrap = ",".join(f"{h}:{client_port}" for h in names)
    click.echo(f"copy each to its host and run: rillet broker start --config server.properties\n"
               f"clients: export RILLET_BROKERS={bootstrap}")
