"""Pure decisions of the mirror (rillet.connectors.mirror.policy): naming, loop rule,
offset translation, MM2 properties."""

from __future__ import annotations

import json
import re

import pytest
from rillet.connectors.mirror.policy import (
    DefaultReplicationPolicy,
    IdentityReplicationPolicy,
    MirrorConfigError,
    OffsetSync,
    configs_to_sync,
    parse_mirror_config,
    parse_properties,
    should_emit_sync,
    should_replicate_topic,
    sync_points,
    translate_offset,
)

from rillet.records import TopicPartition

ALL = re.compile(".*")
BASE = {"clusters": "A, B", "A.bootstrap.servers": "h:1", "B.bootstrap.servers": "h:2",
        "A->B.enabled": "true"}


def test_default_policy_names_and_separator():
    p = DefaultReplicationPolicy("_")
    assert p.format_remote_topic("A", "orders") == "A_orders"
    assert p.topic_source("A_orders") == "A"
    assert p.upstream_topic("A_orders") == "orders"
    assert p.topic_source("orders") is None
    assert p.offset_syncs_topic("B") == "mm2-offset-syncs_B.internal"
    assert p.checkpoints_topic("A") == "A_checkpoints.internal"


def test_loop_rule_never_sends_a_topic_back_to_where_it_came_from():
    p = DefaultReplicationPolicy()
    assert should_replicate_topic(p, "A", "B", "orders", ALL)
    assert not should_replicate_topic(p, "A", "B", "B.orders", ALL)      # came from B
    assert not should_replicate_topic(p, "A", "B", "C.B.orders", ALL)    # passed through B
    assert should_replicate_topic(p, "A", "B", "C.orders", ALL)          # C -> A -> B chain
    assert not should_replicate_topic(p, "A", "B", "__consumer_offsets", ALL)
    assert not should_replicate_topic(p, "A", "B", "mm2-offset-syncs.B.internal", ALL)
    assert not should_replicate_topic(p, "A", "B", "orders", re.compile("pay.*"))


def test_identity_policy_keeps_names_and_refuses_active_active():
    assert IdentityReplicationPolicy().format_remote_topic("A", "t") == "t"
    props = {**BASE, "B->A.enabled": "true",
             "replication.policy.class": "IdentityReplicationPolicy"}
    with pytest.raises(MirrorConfigError, match="loop"):
        parse_mirror_config(props)


def test_translation_never_skips_a_record():
    syncs = [OffsetSync("t", 0, 0, 100), OffsetSync("t", 0, 50, 150), OffsetSync("t", 0, 90, 190)]
    assert translate_offset(syncs, 50) == 150     # exactly at a sync
    assert translate_offset(syncs, 70) == 151     # between syncs: resume right after 50's copy
    assert translate_offset(syncs, 1000) == 191
    assert translate_offset(syncs[1:], 10) is None  # older than every sync: unknown


def test_offset_sync_emitted_on_gap_or_lag():
    last = OffsetSync("t", 0, 10, 20)
    assert should_emit_sync(None, 0, 0, 100)
    assert not should_emit_sync(last, 11, 21, 100)
    assert should_emit_sync(last, 15, 21, 100)    # a gap upstream (compaction, markers)
    assert should_emit_sync(last, 110, 120, 100)


def test_properties_parse_and_flow_settings():
    text = """# mm2
clusters = A, B
A.bootstrap.servers = 127.0.0.1:1
B.bootstrap.servers: 127.0.0.1:2
A->B.enabled = true
A->B.topics = orders.*, pay
A->B.groups = g1
emit.checkpoints.interval.seconds = 2
sync.group.offsets.enabled = true
exactly.once.support = disabled
"""
    cfg = parse_mirror_config(parse_properties(text))
    (flow,) = cfg.flows
    assert (flow.source, flow.target) == ("A", "B")
    assert flow.wants_topic(cfg.policy, "orders-eu") and flow.wants_topic(cfg.policy, "pay")
    assert not flow.wants_topic(cfg.policy, "payroll")
    assert flow.wants_group("g1") and not flow.wants_group("g2")
    assert flow.emit_checkpoints_interval_s == 2 and flow.sync_group_offsets
    assert not flow.exactly_once
    for value in ("enabled", "requested", "ENABLED"):
        (eos,) = parse_mirror_config(parse_properties(
            text.replace("= disabled", f"= {value}"))).flows
        assert eos.exactly_once
    (per_flow,) = parse_mirror_config(parse_properties(
        text + "A->B.exactly.once.support = enabled\n")).flows
    assert per_flow.exactly_once


@pytest.mark.parametrize("props, message", [
    ({**BASE, "A->B.topcs": "x"}, "did you mean 'A->B.topics'"),
    ({**BASE, "emit.checkpoint.interval.seconds": "1"}, "did you mean"),
    ({k: v for k, v in BASE.items() if k != "B.bootstrap.servers"}, "B.bootstrap.servers"),
    ({**BASE, "A->B.enabled": "yes"}, "true or false"),
    ({**BASE, "A->B.enabled": "false"}, "no flow enabled"),
    ({**BASE, "A->B.topics": "("}, "bad regex"),
    ({**BASE, "exactly.once.support": "maybe"}, "exactly.once.support"),
    ({**BASE, "replication.policy.class": "Nope"}, "unknown"),
    ({"A.bootstrap.servers": "h:1"}, "clusters is required"),
])
def test_bad_properties_get_a_clear_error(props, message):
    with pytest.raises(MirrorConfigError, match=re.escape(message)):
        parse_mirror_config(props)


def test_configs_to_sync_leaves_placement_keys_out():
    assert configs_to_sync({"retention.ms": "5", "min.insync.replicas": "2"},
                           {"retention.ms": "9"}) == {"retention.ms": "5"}
    assert configs_to_sync({"retention.ms": "5"}, {"retention.ms": "5"}) == {}


def test_eos_offset_records_round_trip_in_kafka_connect_layout():
    from rillet.connectors.mirror.eos import offset_key, offsets_topic, parse_offset

    tp = TopicPartition("orders", 2)
    key = offset_key("A", tp)
    assert json.loads(key) == ["MirrorSourceConnector",
                               {"cluster": "A", "partition": 2, "topic": "orders"}]
    assert parse_offset("A", key, b'{"offset": 41}') == (tp, 41)
    assert parse_offset("A", key, None) == (tp, None)            # a tombstone
    assert parse_offset("C", key, b'{"offset": 41}') is None     # another source cluster
    for bad_key, bad_value in ((b"junk", b"{}"), (None, b"{}"), (key, b"[1]"),
                               (key, b'{"offset": "x"}'), (b'["Other", {}]', b"{}")):
        assert parse_offset("A", bad_key, bad_value) is None
    assert offsets_topic("A") == "mm2-offsets.A.internal"


def test_sync_points_equal_asking_should_emit_sync_record_by_record():
    """sync_points computes, from a contiguous run's ends, exactly the syncs the per-record
    rule emits (seeded cases: first syncs, same and other drift, re-copies behind the last
    sync, offset.lag.max 0 and 1)."""
    import random

    rng = random.Random(17)
    for _ in range(600):
        max_lag = rng.choice([0, 1, 2, 7, 100])
        u0, d0, count = rng.randrange(0, 500), rng.randrange(0, 500), rng.randrange(0, 300)
        last = None if rng.random() < 0.2 else OffsetSync(
            "t", 0, rng.randrange(0, 700), rng.randrange(0, 700))
        if last is not None and rng.random() < 0.5:  # the same drift as the run
            last = OffsetSync("t", 0, last.upstream_offset, last.upstream_offset + d0 - u0)
        want, current = [], last
        for i in range(count):
            if should_emit_sync(current, u0 + i, d0 + i, max_lag):
                want.append((u0 + i, d0 + i))
                current = OffsetSync("t", 0, u0 + i, d0 + i)
        assert sync_points(last, u0, d0, count, max_lag) == want, (last, u0, d0, count, max_lag)
