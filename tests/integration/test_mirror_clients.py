"""Per-cluster client settings of `rillet mirror` (issue #17, docs/mirror.md "Client
settings") with two real clusters: A is CURVE-secured (`cluster up --secure`), B plaintext.
The mirror reaches A only through `A.security.protocol` / `A.curve.*` in mm2.properties, and
`B.request.timeout.ms` makes a hung B show as `retrying` within seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from rillet.connectors.mirror.remote import _read_all
from rillet.connectors.mirror.state import read_states
from rillet.transport.security import curve_available

from rillet import Admin, NewTopic, Producer
from rillet.launcher import LocalCluster
from rillet.records import TopicPartition
from tests.integration.conftest import TEST_BROKER_CONFIGS
from tests.integration.connect_helpers import WorkerProcess
from tests.integration.mirror_helpers import _count, _props, mirrors_fixture  # noqa: F401
from tests.support import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE"),
]

RECORDS = 200


@pytest.fixture(scope="module")
def secure_pair(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[LocalCluster, LocalCluster]]:
    """A: one CURVE broker (admin's keys in its data dir); B: one plaintext broker."""
    root = tmp_path_factory.mktemp("mirror-secure")
    a = LocalCluster(root / "a", 1, dict(TEST_BROKER_CONFIGS), secure=True)
    b = LocalCluster(root / "b", 1, dict(TEST_BROKER_CONFIGS))
    try:
        a.start(timeout_s=60)
        b.start(timeout_s=60)
        yield a, b
    finally:
        a.stop(timeout_s=10)
        b.stop(timeout_s=10)


def _a_settings(a: LocalCluster) -> dict[str, str]:
    return {f"A.{k}": v for k, v in a.client_security.items()}


def _rest(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _status(props) -> tuple[str, float]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "rillet.cli.main", "mirror", "status",
                          str(props)], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr
    return out.stdout, time.monotonic() - t0


@pytest.mark.slow  # CI time (two clusters of its own); the client-settings rules and the REST
# view are unit-tested (tests/unit/connectors/test_mirror_clients.py, test_mirror_rest_view.py)
def test_a_curve_cluster_is_mirrored_to_a_plaintext_one(secure_pair, tmp_path, mirrors):
    a, b = secure_pair
    src = {**a.client_security, "bootstrap.servers": a.bootstrap_servers}
    assert a.client_security["security.protocol"] == "CURVE"
    with Admin(src) as admin:
        admin.create_topics([NewTopic("orders", 2)])
    with Producer({**src, "acks": "all"}) as p:
        for i in range(RECORDS):
            p.send("orders", f"v{i}".encode(), f"k{i % 7}".encode(), partition=i % 2)
        p.flush()
    props = _props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                   **_a_settings(a), **{"A.consumer.max.poll.records": "50",
                                        "B.producer.linger.ms": "1",
                                        "B.request.timeout.ms": "2000",
                                        "listeners": "http://127.0.0.1:0"})
    mirrors(props)
    wait_until(lambda: _count(b.bootstrap_servers, "A.orders") >= RECORDS, 60,
               "A's records on B")
    source = _read_all(src, "orders")
    copied = _read_all(b.bootstrap_servers, "A.orders")
    assert sorted((r.partition, r.offset, r.key, r.value) for r in copied) == sorted(
        (r.partition, r.offset, r.key, r.value) for r in source)
    with Admin(src) as admin:  # the flow's progress on A (what status shows as MIRRORED)
        wait_until(lambda: sorted(admin.list_consumer_group_offsets("mm2-A->B").values())
                   == [RECORDS // 2, RECORDS // 2], 30, "the mirror's progress on A")

    # B hangs (SIGSTOP: its sockets stay open, nothing answers): status answers within
    # seconds (it took 30 s: its clients waited the default request.timeout.ms), with the
    # lag from A (reached over CURVE) and B unreachable; with B.request.timeout.ms the flow
    # turns `retrying` within seconds (30 s with the default)
    pid = b.pid(1)
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        out, took = _status(props)
        assert took < 15, f"status took {took:.1f} s with B hung"
        assert "heartbeat age: - (B unreachable" in out
        rows = [line.split() for line in out.splitlines() if line.startswith("orders ")]
        assert sorted(rows) == [["orders", str(p), str(RECORDS // 2), "0"] for p in (0, 1)]
        wait_until(lambda: (read_states(props) or {}).get("flows", {}).get("A->B", {}).get(
            "state") == "retrying", 20, "the flow to show retrying while B hangs")
        assert time.monotonic() - t0 < 25
        # the same through the mirror's read-only Connect REST view
        tasks = _rest(read_states(props)["rest_url"] + "/connectors?expand=status")
        source = tasks["A->B.MirrorSourceConnector"]["status"]["tasks"][0]
        assert source["state"] == "RESTARTING" and source["worker_id"].startswith("127.0.0.1:")
        assert "NoBrokersAvailableError" in source["trace"]
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.slow
def test_without_the_curve_settings_the_mirror_reports_the_refusal(secure_pair, tmp_path,
                                                                   mirrors):
    a, b = secure_pair
    props = _props(tmp_path, a.bootstrap_servers, b.bootstrap_servers)
    m = mirrors(props)
    wait_until(lambda: "AuthenticationFailedError" in _status(props)[0], 60,
               "status to say A refused the plaintext client")
    assert "retrying" in _status(props)[0] and m.proc.poll() is None


@pytest.mark.slow  # CI time (secure_pair's two clusters); the settings' resolution is unit-tested
# (tests/unit/connectors/test_mirror_failover_client.py)
def test_translate_offsets_reaches_a_curve_cluster(secure_pair, tmp_path):
    """`rillet group translate-offsets` against a CURVE target (here A, a group failing over
    from a cluster X), with the target's settings from --command-config or the mirror's
    mm2.properties; without them (no profile) a clear refusal within seconds."""
    a, _ = secure_pair
    target = {**a.client_security, "bootstrap.servers": a.bootstrap_servers}
    with Admin(target) as admin:
        admin.create_topics([NewTopic("X.checkpoints.internal", 1), NewTopic("X.pay", 2)])
    with Producer({**target, "acks": "all"}) as p:
        p.send("X.checkpoints.internal", json.dumps({"upstream": 40, "downstream": 37}).encode(),
               json.dumps(["pay-group", "X.pay", 1]).encode())
        p.flush()
    cmd = [sys.executable, "-m", "rillet.cli.main", "group", "translate-offsets", "--from", "X",
           "--to", "A", "--group", "pay-group", "--timeout-ms", "3000"]
    env = {**os.environ, "RILLET_CONFIG_DIR": str(tmp_path / "no-profile")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60,
                              env=env)

    t0 = time.monotonic()
    refused = run("-b", a.bootstrap_servers)
    assert refused.returncode != 0 and time.monotonic() - t0 < 30
    assert "Traceback" not in refused.stderr, refused.stderr

    client = tmp_path / "client.properties"
    client.write_text("".join(f"{k}={v}\n" for k, v in a.client_security.items()))
    out = run("-b", a.bootstrap_servers, "--command-config", str(client), "--apply")
    assert out.returncode == 0, out.stderr
    assert ["X.pay", "1", "37"] in [line.split() for line in out.stdout.splitlines()]
    with Admin(target) as admin:
        assert admin.list_consumer_group_offsets("pay-group") == {TopicPartition("X.pay", 1): 37}

    mm2 = tmp_path / "mm2.properties"
    mm2.write_text("clusters = X, A\nX.bootstrap.servers = 127.0.0.1:1\n"
                   f"A.bootstrap.servers = {a.bootstrap_servers}\nX->A.enabled = true\n"
                   + "".join(f"A.{k} = {v}\n" for k, v in a.client_security.items()))
    out = run("--mirror-config", str(mm2))  # no -b: the address comes from the file too
    assert out.returncode == 0, out.stderr
    assert ["X.pay", "1", "37"] in [line.split() for line in out.stdout.splitlines()]


@pytest.mark.slow  # CI time (secure_pair's two clusters); the connector config's mapping of
# source.cluster.* keys is unit-tested (tests/unit/connectors/test_mirror_connect_config.py)
def test_connector_mode_mirrors_a_curve_cluster(secure_pair, tmp_path):
    """A MirrorSourceConnector in a worker on B reaches the CURVE cluster A with the
    source.cluster.security.* / curve.* connector keys (connector mode, docs/mirror.md)."""
    a, b = secure_pair
    src = {**a.client_security, "bootstrap.servers": a.bootstrap_servers}
    with Admin(src) as admin:
        admin.create_topics([NewTopic("curve-orders", 2)])
    with Producer({**src, "acks": "all"}) as p:
        for i in range(RECORDS):
            p.send("curve-orders", f"v{i}".encode(), f"k{i % 7}".encode(), partition=i % 2)
        p.flush()
    cfg = tmp_path / "worker.properties"
    cfg.write_text(f"bootstrap.servers={b.bootstrap_servers}\nrest.port=0\n")
    source = tmp_path / "source.properties"
    source.write_text("".join(f"{k}={v}\n" for k, v in {
        "name": "curve-source", "connector.class": "MirrorSourceConnector",
        "source.cluster.alias": "A", "target.cluster.alias": "B", "topics": "curve-orders",
        "source.cluster.bootstrap.servers": a.bootstrap_servers,
        "target.cluster.bootstrap.servers": b.bootstrap_servers,
        **{f"source.cluster.{k}": v for k, v in a.client_security.items()}}.items()))
    worker = WorkerProcess(tmp_path, cfg, [source])
    worker.start(timeout=60)
    try:
        wait_until(lambda: _count(b.bootstrap_servers, "A.curve-orders") >= RECORDS, 60,
                   "A's records on B")
        copied = _read_all(b.bootstrap_servers, "A.curve-orders")
        assert sorted((r.partition, r.offset, r.key, r.value) for r in copied) == sorted(
            (r.partition, r.offset, r.key, r.value) for r in _read_all(src, "curve-orders"))
    finally:
        worker.stop()
