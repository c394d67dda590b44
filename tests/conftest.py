"""Suite-wide settings: hypothesis profiles (``HYPOTHESIS_PROFILE=ci|dev|thorough``), and
the project's bytecode compiled once per run (see ``pytest_configure``)."""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("thorough", deadline=None, max_examples=2000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

ROOT = Path(__file__).resolve().parent.parent
# the folders pyproject's package-dir maps into the ``rillet`` namespace, and the tests
# whose helper modules subprocesses import (group members, Connect workers, fake brokers)
SOURCE_DIRS = ("rillet", "actors", "transport", "logstore", "coordinator", "connectors", "tests")


def pytest_configure(config) -> None:
    """With PYTHONDONTWRITEBYTECODE set (as on the CI machines) no process caches bytecode,
    so every broker, CLI and worker process the tests start compiles the whole project
    again: about 0.3 s of CPU per process, several hundred times a run. Compiling it once
    here lets them load the cached .pyc files instead (written to the git-ignored
    ``__pycache__`` folders, exactly what Python does without the variable). Only the
    controlling process does it (not pytest-xdist workers); a read-only checkout is
    skipped quietly: the processes then compile as before."""
    if not sys.dont_write_bytecode or hasattr(config, "workerinput"):
        return
    for name in SOURCE_DIRS:
        directory = ROOT / name
        if directory.is_dir() and os.access(directory, os.W_OK):
            compileall.compile_dir(directory, quiet=2, workers=1)


THOROUGH_TIMEOUT_FACTOR = 20  # the thorough profile's 2,000 examples against the default 100


def pytest_collection_modifyitems(config, items) -> None:
    """``HYPOTHESIS_PROFILE=thorough`` (README "Tests") runs 20x the examples: every test's
    pytest-timeout grows with it (its own ``timeout`` mark, else the ini's), or the property
    tests with a 60 s bound time out half-way (and hypothesis reports the interrupted run
    as flaky data generation)."""
    if os.environ.get("HYPOTHESIS_PROFILE") != "thorough":
        return
    import pytest

    default = float(config.getini("timeout") or 0)
    for item in items:
        mark = item.get_closest_marker("timeout")
        base = float(mark.args[0]) if mark is not None and mark.args else default
        if base > 0:
            item.add_marker(pytest.mark.timeout(base * THOROUGH_TIMEOUT_FACTOR), append=False)
