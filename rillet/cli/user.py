"""``rillet user``: the cluster's CURVE users (docs/security.md). ``add`` issues a key pair,
registers its public key in the cluster metadata and writes the client's key file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from rillet.cli.topic import _admin, admin_options
from rillet.security import profile_security


@click.group("user")
def user() -> None:
    """Add and remove users of a secured cluster (rillet cluster up --secure): CURVE keys
    for native clients, SCRAM-SHA-256/512 credentials (--password) for Kafka clients."""


@user.command("add")
@click.argument("name")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the user's key file (default: ./NAME.curve; never "
                   "overwritten).")
@click.option("--password", "password", default=None,
              help="Give the user SCRAM credentials for this password instead of a "
                   "CURVE key pair: Kafka clients on a SASL KAFKA listener log in with them "
                   "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512). Only salted credentials are sent.")
@click.option("--mechanism", "mechanisms", multiple=True,
              type=click.Choice(["SCRAM-SHA-256", "SCRAM-SHA-512"], case_sensitive=False),
              help="The SCRAM credential(s) to give (with --password; repeatable). "
                   "Default: both.")
@click.option("--iterations", type=click.IntRange(4096, 16384), default=4096, show_default=True,
              help="SCRAM iterations (with --password).")
@admin_options
def add(name, out, password, iterations, mechanisms, bootstrap, timeout_ms) -> None:
    """Issue a key pair for User:NAME and register it with the cluster (or, with
    --password, SCRAM-SHA-256 and SCRAM-SHA-512 credentials, kafka-configs' --add-config
    SCRAM-SHA-256=...,SCRAM-SHA-512=...)."""
    from rillet.coordinator.users import validate_user_name
    from rillet.transport.security import generate_keyfile

    try:
        validate_user_name(name)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if mechanisms and password is None:
        raise click.ClickException("--mechanism goes with --password")
    if password is not None:
        return _add_scram(name, password, iterations, bootstrap,
                          tuple(m.upper() for m in mechanisms) or ("SCRAM-SHA-256", "SCRAM-SHA-512"))
    out = out or Path(f"{name}.curve")
    if out.exists():
        raise click.ClickException(f"{out} exists; choose another --out")
    keys = generate_keyfile(out)
    try:
        with _admin(bootstrap) as admin:
            admin.set_user_key(name, keys.public)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    click.echo(f"User:{name} added; its key pair is in {out} (keep it secret).")
    settings = {"security.protocol": "CURVE", "curve.client.keyfile": str(out.absolute()),
                "curve.server.publickey": profile_security().get("curve.server.publickey",
                                                                 "<the brokers' public key>")}
    click.echo("Client settings:")
    click.echo(json.dumps(settings, indent=2))


def _add_scram(name, password, iterations, bootstrap, mechanisms) -> None:
    with _admin(bootstrap) as admin:
        admin.set_user_scram(name, password, iterations, mechanisms)
    click.echo(f"User:{name} has {' and '.join(mechanisms)} credentials "
               f"(iterations={iterations}).")
    click.echo("Kafka client settings:")
    transport = profile_kafka_transport()
    click.echo(json.dumps({**transport, "sasl.mechanism": mechanisms[-1],
                           "sasl.username": name, "sasl.password": "<the password>"}, indent=2))


def profile_kafka_transport() -> dict[str, str]:
    """The profile's Kafka ``security.protocol`` (SASL_PLAINTEXT unless the cluster is
    SASL_SSL) and ``ssl.ca.location``, for the printed client settings."""
    from rillet.security import read_profile

    try:
        settings = read_profile().get("kafka_security")
    except Exception:  # noqa: BLE001 - only a hint in the printed settings
        settings = None
    if not isinstance(settings, dict):
        settings = {}
    out = {"security.protocol": str(settings.get("security.protocol", "SASL_PLAINTEXT"))}
    if settings.get("ssl.ca.location"):
        out["ssl.ca.location"] = str(settings["ssl.ca.location"])
    return out


@user.command("remove")
@click.argument("name")
@admin_options
def remove(name, bootstrap, timeout_ms) -> None:
    """Remove User:NAME: its key and SCRAM credential are refused from its next connection on."""
    with _admin(bootstrap) as admin:
        admin.delete_user(name)
    click.echo(f"User:{name} removed.")
