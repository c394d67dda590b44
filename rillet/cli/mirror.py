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
    from rillet.connectors.mirror.runner import run_flows

    config = _load(properties)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    for f in config.flows:
        click.echo(f"mirroring {f.source}->{f.target} ({f.source_bootstrap} -> "
                   f"{f.target_bootstrap})", err=True)
    try:
        run_flows(list(config.flows), config.policy, stop=lambda: bool(stopping))
    except KeyboardInterrupt:
        pass


@mirror.command("status")
@click.argument("properties", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def status(properties: Path) -> None:
    """Lag per topic-partition, last checkpoint per group and heartbeat age, per flow."""
    from rillet.cli.topic import _table
    from rillet.connectors.mirror.remote import flow_lag, heartbeat_age_ms

    config = _load(properties)
    for f in config.flows:
        click.echo(f"flow {f.source}->{f.target}")
        rows = flow_lag(f, config.policy)
        _table(["TOPIC", "PARTITION", "MIRRORED", "LAG"],
               [(t, p, done, lag) for t, p, done, lag in rows])
        age = heartbeat_age_ms(f.target_bootstrap, f.source, int(time.time() * 1000))
        click.echo(f"heartbeat age: {'-' if age is None else f'{age} ms'}")
