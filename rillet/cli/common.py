"""Shared CLI plumbing: finding the brokers, the profile, ``k=v`` options, one-line errors.

Brokers come from, in order: ``-b/--bootstrap-server``, ``$RILLET_BROKERS``, the profile that
``rillet cluster up`` writes (``$RILLET_CONFIG_DIR/profile.json``, default
``~/.config/rillet/profile.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from rillet.profile import config_dir, default_brokers, profile_path, read_profile


def default_data_dir() -> Path:
    env = os.environ.get("RILLET_HOME")
    return Path(env) if env else Path.home() / ".local" / "share" / "rillet" / "default"


def last_cluster_path() -> Path:
    return config_dir() / "last-cluster"


def remember_cluster(data_dir: Path) -> None:
    """Record ``data_dir`` as the last cluster started (kept after ``cluster down``)."""
    path = last_cluster_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{data_dir}\n")
    os.replace(tmp, path)


def cluster_data_dir(option: Path | None) -> Path:
    """The cluster a ``rillet cluster`` command acts on: ``--data-dir``, else the last
    cluster started (``rillet cluster up``), else ``default_data_dir()``."""
    if option is not None:
        return option.expanduser().absolute()
    try:
        last = last_cluster_path().read_text().strip()
    except OSError:
        last = ""
    return Path(last) if last else default_data_dir().expanduser().absolute()


def write_profile(profile: dict[str, Any]) -> Path:
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(profile, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def remove_profile_for(data_dir: Path) -> None:
    profile = read_profile()
    if profile and Path(profile.get("data_dir", "")) == data_dir:
        profile_path().unlink(missing_ok=True)


def resolve_brokers(option: str | None) -> str:
    if option:
        return option
    found = default_brokers()
    if found:
        if found[0].startswith("the profile"):
            from rillet._profile_check import cli_note

            cli_note()
        return found[1]
    raise click.UsageError(
        "no brokers: pass -b HOST:PORT, set $RILLET_BROKERS, or start a local cluster "
        "with `rillet cluster up`")


def bootstrap_option(f):
    return click.option(
        "-b", "--bootstrap-server", "bootstrap", metavar="HOST:PORT[,...]",
        help="Brokers to connect to (default: $RILLET_BROKERS, then the profile).")(f)


def parse_kv(items: Iterable[str], what: str = "option") -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a clear error otherwise."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint=what)
        out[key.strip()] = value
    return out


def unescape(text: str) -> str:
    """Kafka-style separators given on a command line: ``\\t``, ``\\n`` and friends."""
    return text.encode("utf-8").decode("unicode_escape") if "\\" in text else text


def truthy(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes", "on")
