"""``rillet streams run module:app`` (docs/streams.md "Running"): run a streams application
defined in a module or a file until SIGTERM or Ctrl-C, which close it cleanly (commit,
close the tasks, leave the group); ``rillet streams describe`` prints its topology."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
from typing import Any

import click


def load_app(target: str) -> Any:
    """``package.module:app`` or ``path/to/file.py:app`` (attribute default ``app``)."""
    from rillet.streams import App

    where, _, attr = target.rpartition(":") if ":" in target else (target, "", "app")
    attr = attr or "app"
    if not where:
        raise click.BadParameter(f"{target!r}: expected module:app or path/to/file.py:app",
                                 param_hint="TARGET")
    if where.endswith(".py") or os.sep in where:
        path = os.path.abspath(where)
        if not os.path.isfile(path):
            raise click.BadParameter(f"no file {where}", param_hint="TARGET")
        sys.path.insert(0, os.path.dirname(path))
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise click.BadParameter(f"cannot import {where!r}: {exc}",
                                     param_hint="TARGET") from None
    app = getattr(module, attr, None)
    if not isinstance(app, App):
        raise click.BadParameter(f"{where}:{attr} is {type(app).__name__}, not a "
                                 "rillet.streams.App", param_hint="TARGET")
    return app


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--config")
        out[key.strip()] = value
    return out


@click.group("streams")
def streams() -> None:
    """Streams applications (rillet.streams)."""


@streams.command("run")
@click.argument("target")
@click.option("-c", "--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Override a config key of the app (repeatable), e.g. "
                   "-c processing.guarantee=exactly_once -c state.dir=/var/lib/app.")
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="What the runtime logs to stderr (tasks created and closed, restores, "
                   "bad records).")
def run_cmd(target: str, configs: tuple[str, ...], log_level: str) -> None:
    """Run the App TARGET (module:app or file.py:app) until SIGTERM or Ctrl-C."""
    import logging

    from rillet.streams.config import require_servers

    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app = load_app(target)
    if configs:
        app.update_config(_pairs(configs))

    def stop(signum: int, _frame: Any) -> None:
        click.echo(f"{signal.Signals(signum).name}: closing {app.application_id}", err=True)
        app.close()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    cfg = app.config
    require_servers(cfg)
    click.echo(f"running {app.application_id} ({cfg.processing_guarantee}, state.dir "
               f"{cfg.state_dir}, brokers {','.join(cfg.bootstrap_servers)})", err=True)
    app.run()
    m = app.metrics()
    click.echo(f"stopped {app.application_id}: {m['processed']} records processed, "
               f"{m['commits']} commits, {m['restored']} restored", err=True)


@streams.command("describe")
@click.argument("target")
def describe_cmd(target: str) -> None:
    """Print the topology of the App TARGET (its sub-topologies, nodes and stores)."""
    click.echo(load_app(target).describe())
