"""`rillet cluster` against a real three-broker cluster: status columns, kill and start, and
--data-dir defaulting to the last cluster started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
RILLET = [sys.executable, "-m", "rillet.cli.main"]
FAST = [
    "-c", "controller.quorum.election.timeout.ms=300",
    "-c", "controller.quorum.fetch.timeout.ms=600",
    "-c", "broker.heartbeat.interval.ms=200",
    "-c", "broker.session.timeout.ms=1500",
]


def run(args, env, check=True):
    proc = subprocess.run([*RILLET, *args], env=env, capture_output=True, timeout=60)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return proc


def rows(status: str) -> dict[str, list[str]]:
    lines = status.strip().split("\n\n")[0].splitlines()  # the table; then notes
    assert lines[0].split()[:5] == ["ID", "ADDRESS", "STATUS", "CONTROLLER", "LEADER-OF"]
    return {line.split()[0]: line.split() for line in lines[1:]}


@pytest.mark.slow  # CI time (~25 s): up/status/down are covered by the other cluster CLI tests
def test_cluster_status_kill_start_with_the_last_data_dir(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RILLET_BROKERS"}
    env["RILLET_CONFIG_DIR"] = str(tmp_path / "config")
    env["RILLET_HOME"] = str(tmp_path / "elsewhere")  # not where the cluster is
    data = tmp_path / "demo"
    try:
        up = run(["cluster", "up", "--detach", "--data-dir", str(data), *FAST], env)
        assert "Cluster started!" in up.stdout.decode()
        run(["topic", "create", "spread", "-p", "3", "-r", "2"], env)
        # no --data-dir: the last cluster started
        table = rows(run(["cluster", "status"], env).stdout.decode())
        assert sorted(table) == ["1", "2", "3"]
        assert all(r[2] == "running" for r in table.values())
        active = [b for b, r in table.items() if r[3] == "active*"]
        assert len(active) == 1 and all(table[b][3] == "voter" for b in table if b != active[0])
        assert all("spread-" in r[4] for r in table.values())  # each leads one partition
        victim = next(b for b in table if b not in active)
        killed = run(["cluster", "kill", victim], env).stdout.decode()
        assert killed == f"Killed broker {victim}.\n"
        deadline = time.monotonic() + 20
        while True:  # stopped at once; its leadership moves once its session expires
            table = rows(run(["cluster", "status"], env).stdout.decode())
            if table[victim][2] == "stopped" and sum(
                r[4].count("spread-") for r in table.values() if r[4] != "-"
            ) == 3:
                break
            assert time.monotonic() < deadline, table
            time.sleep(0.2)
        run(["cluster", "start", victim], env)
        table = rows(run(["cluster", "status"], env).stdout.decode())
        assert table[victim][2] == "running"
        down = run(["cluster", "down"], env).stdout.decode()
        assert "Stopped 3 broker(s)" in down
    finally:
        subprocess.run([*RILLET, "cluster", "down", "--data-dir", str(data)], env=env,
                       capture_output=True, timeout=60)
        from rillet.launcher import LocalCluster

        if (data / "cluster.json").exists():
            LocalCluster(data, brokers=0).stop()
