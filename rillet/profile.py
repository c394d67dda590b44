"""Where a client finds the brokers when nobody names them: the local-cluster profile.

``rillet cluster up`` writes a profile (``$RILLET_CONFIG_DIR/profile.json``, default
``~/.config/rillet/profile.json``) naming the cluster's brokers, so that later ``rillet``
commands, and Python clients created without ``bootstrap.servers``, need no flags. The order
is always: an explicit setting, then ``$RILLET_BROKERS``, then the profile.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

BROKERS_ENV = "RILLET_BROKERS"
# the profile's field for Kafka clients' bootstrap.servers (the brokers' KAFKA listeners)
KAFKA_BOOTSTRAP_FIELD = "kafka_bootstrap_servers"


def config_dir() -> Path:
    env = os.environ.get("RILLET_CONFIG_DIR")
    return Path(env) if env else Path.home() / ".config" / "rillet"


def profile_path() -> Path:
    return config_dir() / "profile.json"


def read_profile() -> dict[str, Any]:
    try:
        profile = json.loads(profile_path().read_text())
    except (OSError, ValueError):
        return {}
    return profile if isinstance(profile, dict) else {}


def default_brokers() -> tuple[str, str] | None:
    """``(where, brokers)`` from ``$RILLET_BROKERS`` or the profile, or None."""
    env = os.environ.get(BROKERS_ENV)
    if env:
        return f"${BROKERS_ENV}", env
    brokers = read_profile().get("brokers")
    if isinstance(brokers, str) and brokers:
        return f"the profile {profile_path()}", brokers
    return None
