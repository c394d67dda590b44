"""``rillet mirror``: cross-cluster mirroring from a MirrorMaker 2 properties file
(docs/mirror.md)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from rillet.connectors.mirror.policy import MirrorConfigError, parse_mirror_config, parse_properties


def _load(path: Path):
    try:
        return parse_mirror_config(parse_properties(path.read_text()))
    except MirrorConfigError as exc:
        raise click.UsageError(f"{path}: {exc}") from None


@click.group("mirror")
def mirror() -> None:
    """Mirror topics and consumer-group offsets between clusters (MirrorMaker 2)."""


@mirror.command("start")
@click.argument("properties", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def start(properties: Path) -> None:
    """Run every enabled flow of PROPERTIES (mm2.properties) until Ctrl-C or SIGTERM."""
    from rillet.connectors.mirror.clients import check_key_files
    from rillet.connectors.mirror.runner import run_flows
    from rillet.connectors.mirror.state import FlowStates, state_path
    from rillet.errors import ConfigError

    config = _load(properties)
    try:
        for f in config.flows:
            check_key_files(f.clients)
    except ConfigError as exc:
        raise click.UsageError(f"{properties}: {exc}") from None
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    for f in config.flows:
        click.echo(f"mirroring {f.source}->{f.target} ({f.source_bootstrap} -> "
                   f"{f.target_bootstrap})", err=True)
    states = FlowStates(state_path(properties), properties.resolve())
    rest = None
    if config.listeners:  # the read-only Connect REST view (docs/mirror.md)
        from rillet.connectors.mirror.rest_view import serve

        try:
            rest = serve(config, properties, config.listeners)
        except OSError as exc:
            raise click.UsageError(f"listeners = {config.listeners}: {exc}") from None
        states.doc["rest_url"] = rest.url
        click.echo(f"Connect REST view (read-only) on {rest.url}", err=True)
    try:
        run_flows(list(config.flows), config.policy, stop=lambda: bool(stopping),
                  states=states)
    except KeyboardInterrupt:
        pass
    finally:
        if rest is not None:
            rest.stop()


@mirror.command("status")
@click.argument("properties", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def status(properties: Path) -> None:
    """Lag per topic-partition, last checkpoint per group and heartbeat age, per flow."""
    from rillet.cli.topic import _table
    from rillet.connectors.mirror.remote import (
        flow_lag,
        heartbeat_age_ms,
        orphaned_topics,
        status_overrides,
    )
    from rillet.connectors.mirror.state import describe, read_states

    config = _load(properties)
    report = read_states(properties)
    now_ms = int(time.time() * 1000)
    if report is None:
        click.echo("mirror process: none has run with this file")
    else:
        click.echo(f"mirror process: pid {report.get('pid')} "
                   f"{'running' if report['alive'] else 'not running'}"
                   + (f", Connect REST view on {report['rest_url']}"
                      if report["alive"] and report.get("rest_url") else ""))
    for f in config.flows:
        name = f"{f.source}->{f.target}"
        entry = (report or {}).get("flows", {}).get(name)
        state = "-" if entry is None else describe(entry, now_ms)
        if entry is not None and not report["alive"]:
            state = f"stopped (last: {state})"
        click.echo(f"flow {name}: {state}")
        # each cluster is asked on its own: one that is down must not hide the other's part
        # each call waits at most remote.STATUS_TIMEOUT_MS for a cluster: a cluster that is
        # down or hung makes status seconds slower, not 30 s
        quick_src, quick_dst = status_overrides(f, "source"), status_overrides(f, "target")
        try:
            rows = flow_lag(f, config.policy, **quick_src)
            _table(["TOPIC", "PARTITION", "MIRRORED", "LAG"],
                   [(t, p, done, lag) for t, p, done, lag in rows])
        except Exception as exc:  # noqa: BLE001 - the source is down: say so, go on
            click.echo(f"lag: - ({f.source} unreachable: {exc})")
        try:
            age = heartbeat_age_ms(f.client("target", "consumer", **quick_dst), f.source)
            click.echo(f"heartbeat age: {'-' if age is None else f'{age} ms'}")
            for remote in orphaned_topics(f, config.policy, **quick_src):
                click.echo(f"orphaned: {remote} (its source topic is gone from {f.source}; "
                           f"the copy on {f.target} is kept)")
        except Exception as exc:  # noqa: BLE001 - the target is down
            click.echo(f"heartbeat age: - ({f.target} unreachable: {exc})")
