"""LocalCluster's bookkeeping of the two listeners and the cluster key (no processes)."""

from __future__ import annotations

import json

import pytest
from rillet.transport.security import curve_available, load_keyfile

from rillet.launcher import CLUSTER_FILE, LocalCluster, _ephemeral_range, free_port

pytestmark = pytest.mark.timeout(30)


def test_each_broker_gets_a_client_and_an_inter_broker_port(tmp_path):
    c = LocalCluster(tmp_path, 3)
    ports = set(c.ports.values()) | set(c.internal_ports.values())
    assert len(ports) == 6
    saved = json.loads((tmp_path / CLUSTER_FILE).read_text())
    assert {int(k): v for k, v in saved["internal_ports"].items()} == c.internal_ports
    # the quorum speaks on the inter-broker listeners, clients bootstrap from the others
    assert c.quorum_voters == ",".join(f"{b}@{c.internal_address(b)}" for b in (1, 2, 3))
    assert c.bootstrap_servers == ",".join(c.address(b) for b in (1, 2, 3))


def test_an_old_cluster_json_gets_inter_broker_ports_once(tmp_path):
    (tmp_path / CLUSTER_FILE).write_text(
        json.dumps({"ports": {"1": 20001, "2": 20002}, "voters": [1, 2], "configs": {}})
    )
    c = LocalCluster(tmp_path)
    assert c.ports == {1: 20001, 2: 20002} and set(c.internal_ports) == {1, 2}
    again = LocalCluster(tmp_path)
    assert again.internal_ports == c.internal_ports and again.ports == c.ports


@pytest.mark.skipif(not curve_available(), reason="libzmq without CURVE")
def test_the_cluster_key_is_made_once_and_passed_to_brokers(tmp_path):
    c = LocalCluster(tmp_path, 1)
    assert c.keyfile == tmp_path / "cluster.curve"
    keys = load_keyfile(c.keyfile)
    assert load_keyfile(LocalCluster(tmp_path, 1).keyfile) == keys  # not regenerated
    plain = LocalCluster(tmp_path / "plain", 1, {"inter.broker.curve.keyfile": ""})
    assert plain.keyfile is None and not (tmp_path / "plain" / "cluster.curve").exists()


def test_free_ports_avoid_the_ephemeral_range():
    low, _high = _ephemeral_range()
    if low <= 11000:
        pytest.skip("no room below the ephemeral range")
    assert all(free_port() < low for _ in range(20))
