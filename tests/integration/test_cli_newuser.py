"""Kafka console-tool forms a new user types (issue #21): `--topic` for produce/consume and
`consume -o @TS` (from a timestamp), through the real CLI against a real broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.integration]
RILLET = [sys.executable, "-m", "rillet.cli.main"]


def run(args, input_=None, check=True):
    env = {k: v for k, v in os.environ.items() if k != "RILLET_BROKERS"}
    proc = subprocess.run([*RILLET, *args], input=input_, env=env, capture_output=True,
                          timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def test_topic_option_and_offset_from_a_timestamp(cluster) -> None:
    b = ["-b", cluster.bootstrap_servers]
    run(["topic", "create", "stamped", "-p", "1", *b])
    run(["produce", "--topic", "stamped", "-q", *b], input_=b"old\n")
    between = int(time.time() * 1000) + 1  # after "old" was acknowledged
    run(["produce", "--topic", "stamped", "-q", *b], input_=b"new\n")
    every = run(["consume", "--topic", "stamped", "-o", "beginning", "-e", *b])
    assert every.stdout == b"old\nnew\n"
    since = run(["consume", "stamped", "-o", f"@{between}", "-e", *b])
    assert since.stdout == b"new\n"
    future = run(["consume", "stamped", "-o", f"@{between + 3_600_000}", "-e", *b])
    assert future.stdout == b""
    bad = run(["consume", "stamped", "--topic", "other", "-e", *b], check=False)
    assert bad.returncode == 2 and b"two topics" in bad.stderr
    bad = run(["consume", "stamped", "-o", "@soon", "-e", *b], check=False)
    assert bad.returncode == 2 and b"@TS takes a timestamp" in bad.stderr
