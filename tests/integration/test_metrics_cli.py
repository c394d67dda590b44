"""The metrics from the command line, as a user runs it (subprocesses): ``cluster up`` and
``cluster status`` print each broker's metrics URL (kept in the profile), and
``rillet top --once`` shows topic rates, no under-replicated partition and a lagging group."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from test_cli_commands import env, local_cluster, run  # noqa: F401 - fixtures

from rillet import Admin, NewTopic, Producer, TopicPartition

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_cluster_prints_metrics_urls_and_top_shows_rates_and_lag(
    env, local_cluster, tmp_path: Path  # noqa: F811
) -> None:
    out = local_cluster.stdout.decode()
    urls = re.findall(r"^1 .* (http://\S+/metrics)$", out, re.MULTILINE)  # METRICS column
    assert len(urls) == 1, out
    url = urls[0]
    profile = json.loads((tmp_path / "config" / "profile.json").read_text())
    assert profile["metrics"] == {"1": url}
    assert url in run(["cluster", "status"], env).stdout.decode()
    with urllib.request.urlopen(url, timeout=10) as r:
        assert b"rillet_leader_count" in r.read()
    brokers = profile["brokers"]
    with Admin({"bootstrap.servers": brokers, "request.timeout.ms": 15000}) as a:
        a.create_topics([NewTopic("toptopic", 1, 1)])
    with Producer({"bootstrap.servers": brokers}) as p:
        for i in range(40):
            p.send("toptopic", f"v{i}".encode(), partition=0)
        p.flush(30)
    with Admin({"bootstrap.servers": brokers, "request.timeout.ms": 15000}) as a:
        a.alter_consumer_group_offsets("slowpokes", {TopicPartition("toptopic", 0): 15})
    frame = run(["top", "--once", "--interval", "0.5"], env).stdout.decode()
    assert "BROKER" in frame and url in frame and "active controller" in frame, frame
    row = next(line for line in frame.splitlines() if line.startswith("toptopic "))
    assert row.split()[-1] == "40", frame  # MSGS TOTAL
    assert "under-replicated partitions: none" in frame, frame
    lag = next(line for line in frame.splitlines() if line.startswith("slowpokes "))
    assert lag.split()[1] == "25", frame  # 40 - 15
    assert "1 lagging" in frame, frame


def test_top_without_endpoints_says_how_to_get_them(env) -> None:  # noqa: F811
    proc = run(["top", "--once"], env, check=False)
    assert proc.returncode != 0
    assert "--metrics" in proc.stderr.decode()
