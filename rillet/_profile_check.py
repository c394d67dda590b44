"""Say which cluster the profile points a command at, and warn when that cluster is gone.

``rillet cluster up`` writes the profile (rillet/profile.py) with the brokers and the cluster's
data dir; a command or client that finds its brokers there used to talk silently to whatever
cluster was started last. Now the CLI names the cluster on stderr (when stderr is a
terminal, so scripts' output is unchanged), and both the CLI and the Python clients warn
(always, on stderr / the ``rillet`` logger) when none of the profile cluster's brokers runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from rillet.profile import profile_path, read_profile

log = logging.getLogger("rillet")


def _running(data_dir: Path) -> bool:
    """Is any broker process of the local cluster in ``data_dir`` alive (pid files)?"""
    for pid_file in data_dir.glob("broker-*/broker.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"rillet.actors.node" in cmdline and str(pid_file.parent).encode() in cmdline:
            return True
    return False


def profile_cluster() -> tuple[str, str | None] | None:
    """``(brokers, data_dir)`` named by the profile, or None without a profile."""
    profile = read_profile()
    brokers = profile.get("brokers")
    if not isinstance(brokers, str) or not brokers:
        return None
    data_dir = profile.get("data_dir")
    return brokers, data_dir if isinstance(data_dir, str) and data_dir else None


def gone_warning() -> str | None:
    """A warning if the profile names a local cluster none of whose brokers runs."""
    found = profile_cluster()
    if found is None or found[1] is None:
        return None
    brokers, data_dir = found
    if _running(Path(data_dir)):
        return None
    return (f"warning: the profile {profile_path()} points at the cluster in {data_dir} "
            f"({brokers}), which is not running; start it with `rillet cluster up "
            f"--data-dir {data_dir}`, or name the brokers with -b / $RILLET_BROKERS")


def cli_note() -> None:
    """For a CLI command whose brokers come from the profile: name the cluster (on a
    terminal) and warn if it is gone."""
    warning = gone_warning()
    if warning is not None:
        print(warning, file=sys.stderr)
        return
    found = profile_cluster()
    if found is not None and sys.stderr.isatty():
        where = f"the cluster in {found[1]}" if found[1] else "the brokers"
        print(f"using {where} ({found[0]}) from the profile {profile_path()}", file=sys.stderr)


def client_note() -> None:
    """For a Python client configured from the profile: log a warning if it is gone."""
    warning = gone_warning()
    if warning is not None:
        log.warning(warning)
