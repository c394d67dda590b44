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
def console(bootstrap: str | None, port: int, host: str, connect_url: str | None) -> None:
    """Serve a web UI of the cluster: brokers, topics, messages, groups, connectors."""
    import socket
    import sys

    import uvicorn

    from rillet.console.app import make_app
    from rillet.console.data import ClusterView

    brokers = resolve_brokers(bootstrap)
    view = ClusterView(brokers)
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
    server = uvicorn.Server(uvicorn.Config(make_app(view, connect_url), log_level="warning"))
    try:
        server.run(sockets=[sock])
    finally:
        view.close()
