"""Helpers shared by every ring of tests: waiting by polling, and the fast cluster timings."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def examples(n: int) -> int:
    """``max_examples`` for a costly hypothesis test: ``n`` in the default suite (CI time),
    ten times that with ``HYPOTHESIS_PROFILE=thorough`` (README "Tests")."""
    return n * 10 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else n

# Fast failure detection for multi-broker tests (Kafka's defaults: 1000, 2000, 2000, 9000 ms).
FAST_CLUSTER_CONFIGS = {
    "controller.quorum.election.timeout.ms": "300",
    "controller.quorum.fetch.timeout.ms": "600",
    "broker.heartbeat.interval.ms": "200",
    "broker.session.timeout.ms": "1500",
}
# ... and fast ISR changes and follower long polls, for replication tests.
FAST_REPLICATION_CONFIGS = {
    **FAST_CLUSTER_CONFIGS,
    "replica.lag.time.max.ms": "1500",
    "replica.fetch.wait.max.ms": "200",
}


def wait_until(
    condition: Callable[[], T],
    timeout_s: float = 10.0,
    what: str = "a condition",
    interval_s: float = 0.02,
) -> T:
    """Poll ``condition`` until it returns something truthy and return that; an
    AssertionError naming ``what`` once ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def require_tool(name: str, path: str | None = None) -> str:
    """The path of an external tool a test drives (kcat, node, chromium, ...), installed by
    tests/tools/install.sh. Missing: the test fails under CI=true (CI must have installed
    it) and is skipped elsewhere, with the command that installs it."""
    import os
    import shutil

    import pytest

    found = path if path and os.path.exists(path) else shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed: run `bash tests/tools/install.sh`"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


_LOGGED_ERROR = re.compile(r"\S+ \S+ (ERROR|CRITICAL)\b")


def logged_errors(cluster) -> list[str]:
    """The lines a LocalCluster's brokers logged at ERROR or above, and tracebacks (an actor
    that failed, a handler that raised)."""
    return [line for b in cluster.broker_ids
            for line in (cluster.broker_dir(b) / "stderr.log").read_text(
                errors="replace").splitlines()
            if _LOGGED_ERROR.match(line) or "Traceback" in line]
