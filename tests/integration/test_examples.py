"""The README's Python example runs against a real broker and prints what the README shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_quickstart_example(cluster) -> None:
    env = {**os.environ, "RILLET_BROKERS": cluster.bootstrap_servers}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert sum(line.startswith("sent to quickstart[") for line in lines) == 3
    consumed = [line for line in lines if line.startswith("quickstart[")]
    assert len(consumed) == 10
    # the same key always lands on the same partition
    by_key: dict[str, set[str]] = {}
    for line in consumed:
        where, key = line.split()[0], line.split()[1].rstrip(":")
        by_key.setdefault(key, set()).add(where.split("@")[0])
    assert set(by_key) == {"customer-0", "customer-1", "customer-2"}
    assert all(len(parts) == 1 for parts in by_key.values())
    assert sorted(int(line.split()[3]) for line in consumed) == list(range(10))
