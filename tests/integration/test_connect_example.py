"""examples/connect/pipeline.py runs as the README says and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_the_file_to_sqlite_example_runs():
    res = subprocess.run([sys.executable, str(ROOT / "examples" / "connect" / "pipeline.py")],
                         capture_output=True, text=True, timeout=110)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout
    assert "connector orders-sqlite-sink started (sink, tasks.max=1)" in out
    assert "  (2, 'jam', 5, 'orders.jsonl')\n  (3, 'bread', 4, 'orders.jsonl')\n" \
           "  (4, 'honey', 1, 'orders.jsonl')\n" in out
    assert "counter              source RUNNING  tasks [0:RUNNING, 1:RUNNING]" in out
    assert "records in the dead-letter topic orders-dlq: 1" in out
    assert out.endswith("worker stopped\n")
