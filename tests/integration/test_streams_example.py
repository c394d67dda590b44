"""examples/streams/wordcount.py, run as a user runs it, against a real broker: it prints the
counts it read from ``word-counts`` and the interactive query's answer (docs/streams.md
"Quick start" shows this output)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "streams" / "wordcount.py"


@pytest.fixture
def cluster(shared_cluster):
    return shared_cluster


@pytest.mark.timeout(180)
def test_wordcount_example_prints_the_counts(cluster, tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", cluster.bootstrap_servers,
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=170)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "interactive query: the = 3"
    counts = dict(line.split("\t") for line in lines[1:])
    assert counts == {"the": "3", "quick": "1", "brown": "1", "fox": "1", "jumps": "1",
                      "over": "1", "lazy": "1", "dog": "2", "sleeps": "1"}
