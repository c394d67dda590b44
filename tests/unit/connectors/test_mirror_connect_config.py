"""The mirror in connector mode and failover (docs/mirror.md, "Connector mode",
"translate-offsets"): MM2's connector keys become one flow's mm2.properties, checked by the
same parser (connectors/mirror/connect.py); the client settings translate-offsets reaches a
(CURVE) target with (remote.failover_client)."""

from __future__ import annotations

import pytest
from rillet.connectors.errors import ConnectConfigError
from rillet.connectors.mirror.connect import MirrorSourceConnector, flow_of
from rillet.connectors.mirror.policy import MirrorConfigError
from rillet.connectors.mirror.remote import failover_client
from rillet.connectors.plugins import load_connector_class
from rillet.connectors.validation import validate_connector_config

KEY = "Z" * 40
FLOW = {"name": "m", "connector.class": "MirrorSourceConnector",
        "source.cluster.alias": "A", "target.cluster.alias": "B",
        "source.cluster.bootstrap.servers": "h:1", "target.cluster.bootstrap.servers": "h:2"}


def _spec(**extra):
    return validate_connector_config({**FLOW, **extra})


def test_mm2_connector_keys_make_one_flow_with_per_cluster_clients():
    spec = _spec(**{"topics": "orders.*,pay", "groups": "billing",
                    "offset.lag.max": "7", "sync.group.offsets.enabled": "true",
                    "source.cluster.security.protocol": "CURVE",
                    "source.cluster.curve.client.keyfile": "/k/mm2.curve",
                    "source.cluster.curve.server.publickey": KEY,
                    "target.cluster.producer.linger.ms": "5"})
    flow, policy = flow_of(spec.config)
    assert (flow.source, flow.target) == ("A", "B")
    assert flow.topics.fullmatch("orders-1") and flow.topics.fullmatch("pay")
    assert not flow.topics.fullmatch("other") and flow.wants_group("billing")
    assert flow.offset_lag_max == 7 and flow.sync_group_offsets
    src = flow.client("source", "consumer")
    assert src["security.protocol"] == "CURVE" and src["bootstrap.servers"] == "h:1"
    assert flow.client("target", "producer")["linger.ms"] == "5"
    assert flow.client("target", "admin")["security.protocol"] == "PLAINTEXT"
    assert policy.format_remote_topic("A", "pay") == "A.pay"
    # copies are bytes: the converters default to bytes, not the worker's json
    assert spec.config["key.converter"] == spec.config["value.converter"] == "bytes"
    # Kafka's class names find the connectors
    for kind in ("Source", "Checkpoint", "Heartbeat"):
        cls = load_connector_class(f"org.apache.kafka.connect.mirror.Mirror{kind}Connector")
        assert cls.__name__ == f"Mirror{kind}Connector"


@pytest.mark.parametrize(("extra", "message"), [
    ({"topcs": "x"}, "unknown key 'topcs' (did you mean 'topics'?)"),
    ({"source.cluster.producer.lingr.ms": "1"},
     "'source.cluster.producer.lingr.ms' (did you mean 'source.cluster.producer.linger.ms'?)"),
    ({"source.cluster.request.timeout.ms": "soon"}, "request.timeout.ms must be an integer"),
    ({"source.cluster.group.id": "g"}, "group.id is set by the mirror itself"),
    ({"value.converter": "json"}, "value.converter must be bytes"),
    ({"target.cluster.bootstrap.servers": ""}, "target.cluster.bootstrap.servers is required"),
    ({"offset.lag.max": "-1"}, "offset.lag.max must be >= 0"),
])
def test_a_bad_connector_config_is_refused_in_its_own_words(extra, message):
    with pytest.raises(ConnectConfigError) as e:
        _spec(**extra)
    assert message in str(e.value)


def test_the_flow_is_exactly_once_through_the_worker_only():
    # Connect's exactly.once.support (requested/required) is the worker's business (KIP-618);
    # the flow itself never opens the dedicated mode's transactions in a connector
    spec = validate_connector_config({**FLOW, "exactly.once.support": "required"},
                                     {"exactly.once.source.support": "enabled"})
    assert not flow_of(spec.config)[0].exactly_once
    assert MirrorSourceConnector().exactly_once_support(spec.config).value == "SUPPORTED"
    with pytest.raises(ConnectConfigError, match="exactly.once.source.support=enabled"):
        validate_connector_config({**FLOW, "exactly.once.support": "required"},
                                  {"exactly.once.source.support": "disabled"})


def test_failover_client_takes_the_targets_settings(tmp_path):
    mm2 = tmp_path / "mm2.properties"
    mm2.write_text("clusters = A, B\nA.bootstrap.servers = h:1\nB.bootstrap.servers = h:2\n"
                   "A->B.enabled = true\nB.security.protocol = CURVE\n"
                   f"B.curve.client.keyfile = /k/mm2.curve\nB.curve.server.publickey = {KEY}\n"
                   "B.admin.request.timeout.ms = 1234\n")
    cfg = failover_client("A", "B", mirror_config=str(mm2))
    assert cfg["bootstrap.servers"] == "h:2" and cfg["security.protocol"] == "CURVE"
    assert cfg["curve.server.publickey"] == KEY and cfg["request.timeout.ms"] == "1234"
    # the source's settings are not the target's; a cluster without security keys is PLAINTEXT
    assert failover_client("B", "A", mirror_config=str(mm2))["security.protocol"] == "PLAINTEXT"
    # --command-config wins over the file, -b over both
    client = tmp_path / "client.properties"
    client.write_text("security.protocol=CURVE\ncurve.client.keyfile=/k/other.curve\n")
    cfg = failover_client("A", "B", bootstrap="h:9", mirror_config=str(mm2),
                          command_config=str(client))
    assert cfg["curve.client.keyfile"] == "/k/other.curve" and cfg["bootstrap.servers"] == "h:9"
    assert failover_client("A", "B") == {}  # nothing given: the profile's settings apply
    with pytest.raises(MirrorConfigError, match="no C.bootstrap.servers"):
        failover_client("A", "C", mirror_config=str(mm2))
