"""A checkout's ``rillet`` package maps rillet.actors, rillet.transport, ... to the same
checkout's folders, even when the venv holds an editable install of another checkout (a git
worktree run with ``PYTHONPATH=<worktree>`` over a shared venv)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


def test_broker_packages_come_from_the_checkout_of_rillet(tmp_path) -> None:
    code = (
        "import rillet, rillet.actors.partition as a, rillet.transport.endpoint as t, "
        "rillet.logstore as l, rillet.coordinator as c, rillet.connectors as k; "
        "print('\\n'.join(m.__file__ for m in (rillet, a, t, l, c, k)))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-P", "-c", code], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=50, check=True,
    ).stdout.split()
    assert len(out) == 6
    for path in out:
        assert Path(path).resolve().is_relative_to(ROOT), path
