"""``rillet cluster up|down|status``: a local cluster of broker processes on loopback.

``up`` starts the brokers (free ports, remembered in DATA_DIR/cluster.json), prints the
endpoints and an ``export RILLET_BROKERS=...`` line, and writes the profile that lets later
commands run without ``-b``. It stays in the foreground until Ctrl-C (then stops the brokers
cleanly), or returns at once with ``--detach`` once every broker serves.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from rillet.cli.common import (
    default_data_dir,
    parse_kv,
    remove_profile_for,
    write_profile,
)

_data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Cluster directory (default: $RILLET_HOME or ~/.local/share/rillet/default).")


@click.group("cluster")
def cluster() -> None:
    """Run a local cluster: up, down, status."""


def _table(statuses) -> None:
    rows = [("NODE-ID", "STATUS", "ADDRESS", "PID", "DATA-DIR")]
    for s in statuses:
        state = "running" if s.ready else ("starting" if s.pid else "stopped")
        rows.append((str(s.broker_id), state, s.address, str(s.pid or "-"), str(s.data_dir)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


@cluster.command("up")
@click.option("-n", "--brokers", type=click.IntRange(1), default=1, show_default=True,
              help="Number of broker processes.")
@_data_dir_option
@click.option("--detach", "-d", is_flag=True, help="Return once the cluster serves.")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Broker config for every broker (repeatable).")
@click.option("--no-profile", is_flag=True, help="Do not write the profile.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the brokers to serve.")
def up(brokers, data_dir, detach, configs, no_profile, timeout) -> None:
    """Start a local cluster (and keep it in the foreground unless --detach)."""
    from rillet.launcher import LocalCluster

    data_dir = (data_dir or default_data_dir()).expanduser().absolute()
    local = LocalCluster(data_dir, brokers, parse_kv(configs, "--config") or None)
    stop = threading.Event()
    if not detach:
        # Ctrl-C / SIGTERM while starting or serving: stop the brokers cleanly.
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        local.start(timeout_s=timeout)
    except BaseException:
        local.stop()
        raise
    brokers_csv = local.bootstrap_servers
    click.echo("Cluster started!")
    _table(local.status())
    click.echo("")
    if not no_profile:
        path = write_profile({"brokers": brokers_csv, "data_dir": str(data_dir)})
        click.echo(f"Profile written to {path}: rillet commands need no -b now. E.g.")
    click.echo(f"    rillet topic create orders -p 3 -b {brokers_csv}")
    click.echo(f"export RILLET_BROKERS={brokers_csv}")
    if detach:
        click.echo(f"Stop it with: rillet cluster down --data-dir {data_dir}")
        return
    click.echo("Press Ctrl-C to stop the cluster.", err=True)
    try:
        while not stop.wait(0.5):
            if all(local.pid(b) is None for b in local.broker_ids):
                raise click.ClickException("every broker exited; see the stderr.log files in "
                                           f"{data_dir}/broker-*/")
    finally:
        click.echo("Stopping the cluster...", err=True)
        local.stop()
        if not no_profile:
            remove_profile_for(data_dir)
        click.echo("Cluster stopped.", err=True)


@cluster.command("down")
@_data_dir_option
def down(data_dir) -> None:
    """Stop the brokers of a (detached) local cluster."""
    from rillet.launcher import CLUSTER_FILE, LocalCluster

    data_dir = (data_dir or default_data_dir()).expanduser().absolute()
    if not (data_dir / CLUSTER_FILE).exists():
        raise click.ClickException(f"no cluster in {data_dir}")
    local = LocalCluster(data_dir, brokers=0)
    running = [b for b in local.broker_ids if local.pid(b) is not None]
    local.stop()
    remove_profile_for(data_dir)
    click.echo(f"Stopped {len(running)} broker(s) of the cluster in {data_dir}.")


@cluster.command("status")
@_data_dir_option
def status(data_dir) -> None:
    """Brokers of the local cluster: running or not, address, pid."""
    from rillet.launcher import CLUSTER_FILE, LocalCluster

    data_dir = (data_dir or default_data_dir()).expanduser().absolute()
    if not (data_dir / CLUSTER_FILE).exists():
        raise click.ClickException(f"no cluster in {data_dir} (start one with "
                                   f"`rillet cluster up`)")
    statuses = LocalCluster(data_dir, brokers=0).status()
    _table(statuses)
    if not any(s.ready for s in statuses):
        raise SystemExit(1)
