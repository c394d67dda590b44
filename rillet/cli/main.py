"""Entry point of the ``rillet`` console script.

Every command reports a failure as one line on stderr (``Error: ...``) and a non-zero exit
code (1 for errors, 2 for usage mistakes, 130 for Ctrl-C); tracebacks only with
``RILLET_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

import click

from rillet import __version__


class _Cli(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # the reader went away (`rillet consume t | head`): exit quietly
            try:
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
            finally:
                sys.exit(0)
        except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
            if os.environ.get("RILLET_DEBUG"):
                raise
            message = str(exc) or type(exc).__name__
            click.echo(f"Error: {message}", err=True)
            sys.exit(1)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="rillet")
def cli() -> None:
    """Rillet: a partitioned, replicated commit log."""


def _register() -> None:
    from rillet.cli.acl import acl
    from rillet.cli.broker import broker
    from rillet.cli.broker import init as cluster_init
    from rillet.cli.cluster import cluster
    from rillet.cli.config import config
    from rillet.cli.console import consume, produce
    from rillet.cli.dump_log import dump_log
    from rillet.cli.features import features
    from rillet.cli.group import group
    from rillet.cli.log_dirs import log_dirs, reassignments
    from rillet.cli.mirror import mirror
    from rillet.cli.perf import perf
    from rillet.cli.queue import queue
    from rillet.cli.quota import quota
    from rillet.cli.records import delete_records
    from rillet.cli.share_group import share_group
    from rillet.cli.streams import streams
    from rillet.cli.top import top
    from rillet.cli.topic import topic
    from rillet.cli.transactions import transactions
    from rillet.cli.user import user
    from rillet.cli.webconsole import console

    for command in (cluster, topic, produce, consume, perf, group, transactions, share_group,
                    queue, streams, user, top, mirror, console, delete_records, log_dirs,
                    acl, config, quota, features):
        cli.add_command(command)
    cli.add_command(broker)  # one broker of a multi-host cluster (docs/operations.md)
    cli.add_command(dump_log)  # kafka-dump-log.sh: segment files as stored
    cluster.add_command(cluster_init)
    # top-level names of Kafka's separate tools (kafka-leader-election.sh,
    # kafka-reassign-partitions.sh) for the commands that live under `rillet topic`
    cli.add_command(topic.commands["elect-leaders"], "elect-leaders")
    cli.add_command(topic.commands["reassign"], "reassign-partitions")
    topic.add_command(reassignments)  # kafka-reassign-partitions --list (docs/operations.md)
    try:  # owned by the Connect engineer; absent in a partial checkout
        from rillet.cli.connect import connect
    except ImportError:
        return
    cli.add_command(connect)


_register()


def main() -> None:
    cli(prog_name="rillet")


if __name__ == "__main__":
    main()
