"""``rillet features describe | upgrade``: feature levels in kafka-features.sh's vocabulary
(docs/operations.md, "Upgrades").

    rillet features describe
    rillet features upgrade --metadata-version 3            # or --feature metadata.version=3
    rillet features upgrade --metadata-version 3 --dry-run  # validate only

``upgrade`` is refused (naming the brokers) while a registered broker cannot read the level.
"""

from __future__ import annotations

import click

from rillet.cli.topic import _admin, admin_options


@click.group("features")
def features() -> None:
    """Describe and upgrade the cluster's feature levels (metadata.version)."""


@features.command("describe")
@admin_options
def describe(bootstrap, timeout_ms) -> None:
    """Finalized levels, the range every broker supports, and each broker's range."""
    with _admin(bootstrap) as admin:
        fm = admin.describe_features()
    for name, level in sorted(fm.finalized.items()):
        lo, hi = fm.supported.get(name, (0, 0))
        click.echo(f"Feature: {name}\tSupportedMinVersion: {lo}\tSupportedMaxVersion: {hi}"
                   f"\tFinalizedVersionLevel: {level}")
    for b, (lo, hi) in sorted(fm.brokers.items()):
        click.echo(f"  broker {b}: reads metadata.version {lo}-{hi}")
    for level, what in sorted(fm.levels.items()):
        click.echo(f"  level {level}: {what}")


@features.command("upgrade")
@admin_options
@click.option("--metadata-version", type=click.IntRange(1), default=None, metavar="N",
              help="Finalize metadata.version at N.")
@click.option("--feature", "feature_specs", multiple=True, metavar="NAME=LEVEL",
              help="A feature and its level (kafka-features.sh --feature).")
@click.option("--dry-run", is_flag=True, help="Validate only; change nothing.")
def upgrade(bootstrap, timeout_ms, metadata_version, feature_specs, dry_run) -> None:
    """Raise feature levels (every registered broker must support them)."""
    updates: dict[str, int] = {}
    if metadata_version is not None:
        updates["metadata.version"] = metadata_version
    for spec in feature_specs:
        name, sep, level = spec.partition("=")
        if not sep or not level.strip().isdigit():
            raise click.UsageError(f"--feature {spec!r} is not NAME=LEVEL")
        updates[name.strip()] = int(level)
    if not updates:
        raise click.UsageError("nothing to do: give --metadata-version N or --feature NAME=LEVEL")
    with _admin(bootstrap) as admin:
        admin.update_features(updates, validate_only=dry_run)
    for name, level in updates.items():
        verb = "could be upgraded" if dry_run else "was upgraded"
        click.echo(f"{name} {verb} to {level}.")
