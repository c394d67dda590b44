"""``rillet connect ...``: run a standalone Connect worker and control it over its REST API.

    rillet connect standalone worker.properties file-source.json sqlite-sink.toml
    rillet connect list                     # --url http://127.0.0.1:8083 (or $RILLET_CONNECT_URL)
    rillet connect status NAME
    rillet connect pause|resume|stop|delete NAME
    rillet connect restart NAME [--include-tasks] [--only-failed]
    rillet connect offsets NAME [--reset]
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

import click

DEFAULT_URL = "http://127.0.0.1:8083"


@click.group("connect")
def connect() -> None:
    """Kafka-Connect-style connectors: run a worker, inspect and control it."""


@connect.command("standalone")
@click.argument("worker_config", type=click.Path(exists=True, dir_okay=False))
@click.argument("connector_configs", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False))
def standalone(worker_config: str, connector_configs: tuple[str, ...]) -> None:
    """Run a worker with these connectors until Ctrl-C / SIGTERM.

    Configs are .properties, .json or .toml files with Kafka Connect's keys.
    """
    from loguru import logger

    from rillet.connectors.errors import ConnectConfigError
    from rillet.connectors.standalone import run_standalone

    logger.remove()
    logger.add(sys.stderr, level=os.environ.get("RILLET_LOG_LEVEL", "INFO"))
    try:
        sys.exit(run_standalone(worker_config, list(connector_configs)))
    except ConnectConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)


def _url_option(f: Any) -> Any:
    return click.option("--url", default=lambda: os.environ.get("RILLET_CONNECT_URL",
                                                                DEFAULT_URL),
                        show_default=DEFAULT_URL, help="the worker's REST address")(f)


def _call(url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message", str(e))
        except ValueError:
            message = str(e)
        raise click.ClickException(f"{e.code}: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise click.ClickException(f"cannot reach the worker at {url}: {reason}") from None
    return json.loads(raw) if raw else None


def _echo(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


@connect.command("list")
@_url_option
def list_(url: str) -> None:
    """Connectors and their states."""
    data = _call(url, "GET", "/connectors?expand=status")
    if not data:
        click.echo("no connectors")
        return
    for name, info in sorted(data.items()):
        st = info["status"]
        tasks = ", ".join(f"{t['id']}:{t['state']}" for t in st["tasks"])
        click.echo(f"{name}\t{st['type']}\t{st['connector']['state']}\ttasks [{tasks}]")


@connect.command("status")
@click.argument("name")
@_url_option
def status(name: str, url: str) -> None:
    """Connector and task states, with error traces."""
    _echo(_call(url, "GET", f"/connectors/{name}/status"))


def _simple(verb: str, method: str, doc: str) -> None:
    @connect.command(verb, help=doc)
    @click.argument("name")
    @_url_option
    def cmd(name: str, url: str) -> None:
        path = f"/connectors/{name}" + ("" if verb == "delete" else f"/{verb}")
        _call(url, method, path)
        click.echo(f"{verb}: {name}")


_simple("pause", "PUT", "Pause a connector's tasks.")
_simple("resume", "PUT", "Resume a paused or stopped connector.")
_simple("stop", "PUT", "Stop a connector's tasks (then its offsets may be changed).")
_simple("delete", "DELETE", "Stop and remove a connector.")


@connect.command("restart")
@click.argument("name")
@click.option("--include-tasks", is_flag=True, help="restart the tasks too")
@click.option("--only-failed", is_flag=True, help="only what has FAILED")
@_url_option
def restart(name: str, include_tasks: bool, only_failed: bool, url: str) -> None:
    """Restart a connector (and its tasks)."""
    q = f"?includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}"
    _echo(_call(url, "POST", f"/connectors/{name}/restart{q}"))


@connect.command("offsets")
@click.argument("name")
@click.option("--reset", is_flag=True, help="delete every stored offset (connector stopped)")
@_url_option
def offsets(name: str, reset: bool, url: str) -> None:
    """Show (or reset) a connector's stored offsets."""
    _echo(_call(url, "DELETE" if reset else "GET", f"/connectors/{name}/offsets"))


if __name__ == "__main__":  # python -m rillet.cli.connect standalone ... (used by tests)
    connect(prog_name="rillet connect")
