"""Per-cluster client settings of the mirror (connectors/mirror/clients.py): MirrorMaker 2's
precedence, validation against the client config keys, what the mirror keeps for itself."""

from __future__ import annotations

import pytest
from rillet.connectors.mirror.clients import client_config, client_keys
from rillet.connectors.mirror.policy import MirrorConfigError, parse_mirror_config

BASE = {"clusters": "A, B", "A.bootstrap.servers": "h:1", "B.bootstrap.servers": "h:2",
        "A->B.enabled": "true"}
KEY = "Z" * 40


def _flow(**props: str):
    return parse_mirror_config({**BASE, **props}).flows[0]


def test_precedence_is_mirrormakers_lowest_first():
    layers = [("A->B.consumer.request.timeout.ms", "1"), ("request.timeout.ms", "2"),
              ("A.request.timeout.ms", "3"), ("A.consumer.request.timeout.ms", "4"),
              ("A->B.source.consumer.request.timeout.ms", "5")]
    for n in range(1, len(layers) + 1):  # each layer added wins over every one below it
        cfg = _flow(**dict(layers[:n])).client("source", "consumer")
        assert cfg["request.timeout.ms"] == str(n)
    # and none leaks into another cluster's or role's client beyond its own layer
    flow = _flow(**dict(layers))
    assert flow.client("target", "consumer")["request.timeout.ms"] == "2"  # the global one
    assert flow.client("source", "admin")["request.timeout.ms"] == "3"     # A.*


def test_flow_level_role_key_loses_to_the_clusters_own_setting():
    flow = _flow(**{"A->B.producer.linger.ms": "7", "B.producer.linger.ms": "9"})
    assert flow.client("target", "producer")["linger.ms"] == "9"
    flow = _flow(**{"A->B.producer.linger.ms": "7", "B.producer.linger.ms": "9",
                    "A->B.target.producer.linger.ms": "3"})
    assert flow.client("target", "producer")["linger.ms"] == "3"
    assert flow.client("source", "producer")["linger.ms"] == "7"  # the syncs producer on A


def test_curve_settings_per_cluster_and_plaintext_otherwise():
    flow = _flow(**{"A.security.protocol": "CURVE", "A.curve.client.keyfile": "/k/a.curve",
                    "A.curve.server.publickey": KEY})
    for role in ("producer", "consumer", "admin"):
        src = flow.client("source", role)
        assert (src["security.protocol"], src["curve.client.keyfile"],
                src["curve.server.publickey"], src["bootstrap.servers"]) == (
            "CURVE", "/k/a.curve", KEY, "h:1")
        # B has no security key in the file: plaintext, never the CLI profile's CURVE keys
        assert flow.client("target", role)["security.protocol"] == "PLAINTEXT"
        assert "curve.client.keyfile" not in flow.client("target", role)


def test_mirror_defaults_under_user_settings_and_fixed_ones_on_top():
    flow = _flow(**{"B.producer.linger.ms": "50"})
    prod = flow.client("target", "producer")
    assert (prod["acks"], prod["enable.idempotence"], prod["linger.ms"]) == ("all", "true", "50")
    assert flow.client("source", "consumer", enable_auto_commit="false")[
        "enable.auto.commit"] == "false"


@pytest.mark.parametrize(("props", "message"), [
    ({"A.producer.lingr.ms": "5"}, "did you mean 'A.producer.linger.ms'"),
    ({"A.consumer.acks": "1"}, "unknown key 'A.consumer.acks'"),
    ({"A.request.timeout": "5"}, "did you mean 'A.request.timeout.ms'"),
    ({"producer.acks": "1"}, "need a cluster"),
    ({"A.consumer.group.id": "g"}, "group.id is set by the mirror"),
    ({"A->B.target.producer.transactional.id": "x"}, "set by the mirror"),
    ({"A.producer.bootstrap.servers": "h:3"}, "<alias>.bootstrap.servers"),
    ({"C.producer.acks": "1"}, "unknown key"),
    ({"A.request.timeout.ms": "soon"},
     "A->B source producer: request.timeout.ms must be an integer"),
    ({"A.security.protocol": "CURVE"}, "needs curve.client.keyfile"),
    ({"B.curve.client.keyfile": "/k"}, "security.protocol is PLAINTEXT"),
    ({"B.producer.acks": "1", "exactly.once.support": "enabled"}, "requires acks=all"),
])
def test_bad_client_settings_are_refused_naming_the_key(props, message):
    with pytest.raises(MirrorConfigError, match=message.replace("(", r"\(").replace(
            ")", r"\)")):
        parse_mirror_config({**BASE, **props})


def test_at_least_once_may_weaken_acks_but_exactly_once_may_not():
    assert _flow(**{"B.producer.acks": "1"}).client("target", "producer")["acks"] == "1"


def test_every_layer_is_a_known_key():
    keys = client_keys(("A", "B"))
    assert {"request.timeout.ms", "A.request.timeout.ms", "A.producer.acks",
            "A->B.consumer.max.poll.records", "A->B.source.admin.client.id",
            "B->A.target.producer.compression.type"} <= keys
    assert "A->A.producer.acks" not in keys and "A.admin.acks" not in keys


def test_client_config_carries_the_clusters_address():
    props = {**BASE, "B.client.id": "mm2"}
    assert client_config(props, "A", "B", "target", "admin") == {
        "client.id": "mm2", "security.protocol": "PLAINTEXT", "bootstrap.servers": "h:2"}


def test_start_refuses_a_curve_key_file_it_cannot_read(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from rillet.cli.main import cli

    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path / "cfg"))
    props = tmp_path / "mm2.properties"
    props.write_text("".join(f"{k} = {v}\n" for k, v in {
        **BASE, "A.security.protocol": "CURVE", "A.curve.server.publickey": KEY,
        "A.curve.client.keyfile": str(tmp_path / "missing.curve")}.items()))
    out = CliRunner().invoke(cli, ["mirror", "start", str(props)])
    assert out.exit_code == 2 and "curve.client.keyfile" in out.output
    assert "missing.curve" in out.output
