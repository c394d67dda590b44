"""``rillet cluster up|down|status|kill|start``: a local cluster of broker processes on loopback.

``up`` starts the brokers (3 by default; free ports, remembered in DATA_DIR/cluster.json; the
first three are the controller quorum's voters), prints the endpoints and an
``export RILLET_BROKERS=...`` line (and ``export KAFKA_BOOTSTRAP_SERVERS=...``: every broker
also serves Kafka's protocol, docs/kafka-compat.md), and writes the profile that lets later
commands run without ``-b``. It stays in the foreground until Ctrl-C (then stops the brokers cleanly), or
returns at once with ``--detach`` once every broker is registered. ``kill ID`` (SIGKILL, a
crash) and ``start ID`` act on one broker, for demos and tests. Every subcommand takes
``--data-dir``; without it, ``up`` uses the default ($RILLET_HOME or
~/.local/share/rillet/default) and the others the last cluster started.
"""

from __future__ import annotations

import threading
from pathlib import Path

import click

from rillet.cli.common import (
    cluster_data_dir,
    parse_kv,
    remember_cluster,
    remove_profile_for,
    write_profile,
)
from rillet.profile import KAFKA_BOOTSTRAP_FIELD

_data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Cluster directory (default for up: $RILLET_HOME or ~/.local/share/rillet/default; "
         "for the others: the last cluster started, else that default).")


@click.group("cluster")
def cluster() -> None:
    """Run a local cluster: up, down, status, kill, start."""


def _table(statuses, metrics: dict[int, str] | None = None) -> None:
    """One row per broker; ``metrics``: each broker's Prometheus URL (docs/metrics.md)."""
    from rillet.cli._cluster_up import say

    rows = [("ID", "ADDRESS", "STATUS", "CONTROLLER", "LEADER-OF", "PID", "DATA-DIR", "METRICS")]
    active = {s.controller_id for s in statuses if s.ready and s.controller_id >= 0}
    for s in statuses:
        if s.pid is None:
            state = "stopped"
        elif s.fenced:
            state = "fenced"
        else:
            state = "running" if s.ready else "starting"
        if s.broker_id in active and s.pid is not None:
            role = "active*"
        else:
            role = "voter" if s.voter else "-"
        led = ",".join(s.leader_of) if s.pid is not None else ""
        if len(led) > 40:
            led = f"{len(s.leader_of)} partitions"
        rows.append((str(s.broker_id), s.address, state, role, led or "-", str(s.pid or "-"),
                     str(s.data_dir), (metrics or {}).get(s.broker_id, "-")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        say("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _kafka_line(local) -> None:
    """Kafka clients' bootstrap.servers (the brokers' KAFKA listeners), if they have one."""
    from rillet.cli._cluster_up import say

    if local.kafka_bootstrap_servers:
        say(f"Kafka clients (kcat, confluent-kafka, ...): bootstrap.servers="
            f"{local.kafka_bootstrap_servers}")
        say(f"export KAFKA_BOOTSTRAP_SERVERS={local.kafka_bootstrap_servers}")
        sasl = getattr(local, "kafka_client_settings", None)
        if sasl:  # a --secure cluster: SASL on the KAFKA listener (docs/security.md)
            say("Kafka client settings (the admin; its password is in the profile and in "
                f"{local.data_dir}/admin.password):")
            say("    " + " ".join(f"{k}={v}" for k, v in sasl.items() if k != "sasl.password")
                + " sasl.password=<the admin password>")


def _existing(data_dir: Path | None):
    from rillet.launcher import CLUSTER_FILE, LocalCluster

    data_dir = cluster_data_dir(data_dir)
    if not (data_dir / CLUSTER_FILE).exists():
        raise click.ClickException(f"no cluster in {data_dir} (start one with "
                                   f"`rillet cluster up`)")
    return LocalCluster(data_dir, brokers=0)


@cluster.command("up")
@click.option("-n", "--brokers", type=click.IntRange(1), default=3, show_default=True,
              help="Number of broker processes (the first three are controller voters).")
@_data_dir_option
@click.option("--detach", "-d", is_flag=True, help="Return once the cluster serves.")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Broker config for every broker (repeatable).")
@click.option("--no-profile", is_flag=True, help="Do not write the profile.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the brokers to serve.")
@click.option("--secure", is_flag=True,
              help="CURVE-authenticated clients only; the admin's keys go to the profile "
                   "(docs/security.md).")
@click.option("--tls", is_flag=True,
              help="TLS on the KAFKA listener (SASL_SSL with --secure, else SSL) with a CA "
                   "and broker certificate made in the data dir; ssl.ca.location goes to the "
                   "profile (needs the cryptography package; docs/security.md).")
def up(brokers, data_dir, detach, configs, no_profile, timeout, secure, tls) -> None:
    """Start a local cluster (and keep it in the foreground unless --detach)."""
    from rillet.cli import _cluster_up as checks
    from rillet.launcher import LocalCluster

    data_dir = checks.up_data_dir(data_dir)
    configs = parse_kv(configs, "--config")
    checks.check_configs(configs)
    checks.refuse_if_running(data_dir)
    saved = checks.SavedState(data_dir)
    # Ctrl-C / SIGTERM / SIGHUP while starting or serving: stop the brokers cleanly.
    stop = checks.install_stop_handlers() if not detach else threading.Event()
    say = checks.say
    local = None
    served = False
    try:
        # Kafka's protocol too (SASL_PLAINTEXT on a --secure cluster, rillet/security.py)
        local = LocalCluster(data_dir, brokers, configs or None, secure=secure, kafka=True,
                             tls=tls)
        local.start(timeout_s=timeout)
        remember_cluster(data_dir)
        served = True
        if stop.is_set():
            return
        brokers_csv = local.bootstrap_servers
        say("Cluster started!")
        _table(local.status(), local.metrics_urls)
        say("")
        if not no_profile:
            profile = {"brokers": brokers_csv, "data_dir": str(data_dir),
                       "metrics": local.metrics_urls}
            if local.kafka_bootstrap_servers:  # docs/kafka-compat.md
                profile[KAFKA_BOOTSTRAP_FIELD] = local.kafka_bootstrap_servers
            if local.client_security:  # the admin's CURVE credentials (rillet/security.py)
                profile["security"] = local.client_security
            if local.kafka_client_settings:  # the admin's SASL settings for Kafka clients
                profile["kafka_security"] = local.kafka_client_settings
            path = write_profile(profile)
            say(f"Profile written to {path}: rillet commands need no -b now, e.g.")
            say("    rillet topic create orders -p 3")
            say("Elsewhere (other tools, another HOME):")
        else:
            say("Later commands need the brokers, e.g.")
            say(f"    rillet topic create orders -p 3 -b {brokers_csv}")
        say(f"export RILLET_BROKERS={brokers_csv}")
        _kafka_line(local)
        if detach:
            say(f"Stop it with: rillet cluster down --data-dir {data_dir}")
            return
        say("Press Ctrl-C to stop the cluster.", err=True)
        while not stop.wait(0.5):
            if all(local.pid(b) is None for b in local.broker_ids):
                raise click.ClickException("every broker exited; see the stderr.log files in "
                                           f"{data_dir}/broker-*/")
    finally:
        if local is not None and not (detach and served):
            if served:
                say("Stopping the cluster...", err=True)
            local.stop()
            if served and not no_profile:
                remove_profile_for(data_dir)
            if served:
                say("Cluster stopped.", err=True)
        if not served:
            saved.restore()


@cluster.command("down")
@_data_dir_option
def down(data_dir) -> None:
    """Stop the brokers of a (detached) local cluster."""
    local = _existing(data_dir)
    running = [b for b in local.broker_ids if local.pid(b) is not None]
    local.stop()
    remove_profile_for(local.data_dir)
    click.echo(f"Stopped {len(running)} broker(s) of the cluster in {local.data_dir}.")


@cluster.command("status")
@_data_dir_option
def status(data_dir) -> None:
    """Brokers of the local cluster: address, state, controller role, partitions led; then
    Kafka clients' bootstrap.servers."""
    from rillet.cli._cluster_up import say

    local = _existing(data_dir)
    statuses = local.status()
    _table(statuses, local.metrics_urls)
    if local.kafka_bootstrap_servers:  # after a blank line: the table stays a table
        say("")
        _kafka_line(local)
    if not any(s.ready for s in statuses):
        raise SystemExit(1)


@cluster.command("kill")
@click.argument("broker_id", type=int)
@_data_dir_option
def kill(broker_id, data_dir) -> None:
    """SIGKILL one broker (a crash: no clean shutdown)."""
    local = _existing(data_dir)
    if broker_id not in local.ports:
        raise click.ClickException(f"no broker {broker_id} in {local.data_dir} "
                                   f"(brokers: {local.broker_ids})")
    if local.pid(broker_id) is None:
        raise click.ClickException(f"broker {broker_id} is not running")
    local.kill(broker_id)
    click.echo(f"Killed broker {broker_id}.")


@cluster.command("start")
@click.argument("broker_id", type=int)
@_data_dir_option
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the broker to serve.")
def start(broker_id, data_dir, timeout) -> None:
    """Start one broker of the cluster again (or a new one, with the next free port)."""
    local = _existing(data_dir)
    local.start_broker(broker_id)
    local.wait_ready(timeout, broker_ids=[broker_id])
    click.echo(f"Started broker {broker_id} at {local.address(broker_id)}.")
