"""``rillet console``: serve the web console (rillet/console/) for the profile's cluster."""

from __future__ import annotations

import click

from rillet.cli.common import bootstrap_option, resolve_brokers


@click.command("console")
@bootstrap_option
@click.option("--port", type=int, default=8080, show_default=True,
              help="HTTP port; 0 picks a free one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind (the console has no login: keep it local).")
@click.option("--connect-url", metavar="URL", default=None,
              help="A Kafka Connect REST URL, for the connectors page.")
@click.option("--metrics", "metrics", multiple=True, metavar="URL",
              help="A broker's Prometheus URL, for the rates (repeatable; default: the "
                   "profile's, when the brokers are the profile's).")
def console(bootstrap: str | None, port: int, host: str, connect_url: str | None,
            metrics: tuple[str, ...]) -> None:
    """Serve a web UI of the cluster: brokers, topics, messages, groups, connectors."""
    import socket
    import sys

    import uvicorn

    from rillet.console.app import make_app
    from rillet.console.data import ClusterView
    from rillet.console.rates import MetricRates

    brokers = resolve_brokers(bootstrap)
    view = ClusterView(brokers)
    urls = list(metrics) or _profile_metrics(brokers)
    rates = MetricRates(urls) if urls else None
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Rillet console for {brokers} at http://{shown}:{bound}/  (Ctrl-C to stop)")
    sys.stdout.flush()
    app = make_app(view, connect_url, rates)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    try:
        server.run(sockets=[sock])
    finally:
        view.close()


def _profile_metrics(brokers: str) -> list[str]:
    """The profile's metrics URLs (``rillet cluster up`` writes them), only if the console
    serves the profile's cluster: another cluster's rates would be wrong, not missing."""
    from rillet.profile import read_profile

    profile = read_profile()
    found = profile.get("metrics")
    if profile.get("brokers") != brokers or not isinstance(found, dict):
        return []
    return [str(u) for _, u in sorted(found.items(), key=lambda kv: str(kv[0]).zfill(9))]
