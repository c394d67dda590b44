"""Entry point of the ``rillet`` console script."""

from __future__ import annotations

import click

from rillet import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="rillet")
def cli() -> None:
    """Rillet: a partitioned, replicated commit log."""


def main() -> None:
    cli(prog_name="rillet")


if __name__ == "__main__":
    main()
