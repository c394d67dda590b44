"""The checks and signal handling of ``rillet cluster up``, kept out of cluster.py.

- ``up`` without ``--data-dir`` uses the documented default (``$RILLET_HOME`` or
  ``~/.local/share/rillet/default``), never the last ``--data-dir`` given: other subcommands
  (``down``, ``status``, ...) still default to the last cluster started.
- The ``-c`` configs are validated before anything is written, and a failed ``up`` puts
  ``cluster.json`` back as it was (or removes it): a typo is not saved for good.
- ``up`` on a cluster that already runs says so and starts nothing.
- SIGINT, SIGTERM and SIGHUP (terminal closed) stop the brokers; so does a broken stdout
  (``up | tee log`` and Ctrl-C kills ``tee`` too): output is best effort, the stop is not.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def up_data_dir(option: Path | None) -> Path:
    from rillet.cli.common import default_data_dir

    return (option if option is not None else default_data_dir()).expanduser().absolute()


def check_configs(configs: dict[str, str]) -> None:
    """A clear error for an unknown key or a wrong value, before anything is saved."""
    from rillet.actors.configs import ConfigError, validate_broker_configs

    try:
        validate_broker_configs(configs)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="-c/--config") from None


def refuse_if_running(data_dir: Path) -> None:
    from rillet.launcher import CLUSTER_FILE, LocalCluster

    if not (data_dir / CLUSTER_FILE).exists():
        return
    local = LocalCluster(data_dir, brokers=0)
    running = [b for b in local.broker_ids if local.pid(b) is not None]
    if running:
        ids = ",".join(map(str, running))
        raise click.ClickException(
            f"the cluster in {data_dir} is already running (broker(s) {ids} at "
            f"{local.bootstrap_servers}); see `rillet cluster status --data-dir {data_dir}`, "
            f"stop it with `rillet cluster down --data-dir {data_dir}`, or start one stopped "
            f"broker with `rillet cluster start ID`")


class SavedState:
    """``cluster.json`` as it was before ``up``, to put back if ``up`` fails."""

    def __init__(self, data_dir: Path) -> None:
        from rillet.launcher import CLUSTER_FILE

        self.path = data_dir / CLUSTER_FILE
        self.before = self.path.read_bytes() if self.path.exists() else None

    def restore(self) -> None:
        if self.before is None:
            self.path.unlink(missing_ok=True)
        else:
            self.path.write_bytes(self.before)


def install_stop_handlers() -> threading.Event:
    stop = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    return stop


def say(message: str = "", err: bool = False) -> None:
    """``click.echo`` that survives a closed stdout (``| tee`` killed by Ctrl-C)."""
    try:
        click.echo(message, err=err)
    except OSError:  # BrokenPipeError and friends: send the rest of the output nowhere
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (sys.stderr if err else sys.stdout).fileno())
        os.close(devnull)
