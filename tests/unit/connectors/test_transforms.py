"""SMTs and predicates with Kafka's config names."""

from __future__ import annotations

import pytest
from rillet.connectors.api import SinkRecord, SourceRecord
from rillet.connectors.errors import ConnectConfigError, TransformError
from rillet.connectors.transforms import build_transforms


def rec(value, topic="orders-raw", key=None, headers=()):
    return SinkRecord(topic, 2, 17, key=key, value=value, headers=headers, timestamp=99)


def test_insert_field_adds_static_and_metadata_fields():
    chain = build_transforms({
        "transforms": "ins", "transforms.ins.type": "InsertField$Value",
        "transforms.ins.static.field": "src", "transforms.ins.static.value": "db",
        "transforms.ins.topic.field": "t", "transforms.ins.offset.field": "o",
        "transforms.ins.partition.field": "p", "transforms.ins.timestamp.field": "ts"})
    out = chain.apply(rec({"id": 1}))
    assert out.value == {"id": 1, "src": "db", "t": "orders-raw", "o": 17, "p": 2, "ts": 99}
    assert chain.apply(rec(None)).value is None  # tombstones pass


def test_replace_field_drops_keeps_renames_and_works_on_keys():
    chain = build_transforms({
        "transforms": "a,b",
        "transforms.a.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
        "transforms.a.exclude": "secret", "transforms.a.renames": "id:order_id,amt:amount",
        "transforms.b.type": "ReplaceField$Key", "transforms.b.include": "k"})
    out = chain.apply(rec({"id": 1, "amt": 5, "secret": "x"}, key={"k": 1, "j": 2}))
    assert out.value == {"order_id": 1, "amount": 5} and out.key == {"k": 1}
    with pytest.raises(TransformError, match="needs a map value"):
        chain.apply(rec("plain string"))
    with pytest.raises(ConnectConfigError, match="old:new"):
        build_transforms({"transforms": "a", "transforms.a.type": "ReplaceField$Value",
                          "transforms.a.renames": "broken"})


def test_value_to_key():
    chain = build_transforms({"transforms": "k", "transforms.k.type": "ValueToKey",
                              "transforms.k.fields": "id,region"})
    assert chain.apply(rec({"id": 1, "region": "eu", "x": 0})).key == {"id": 1, "region": "eu"}
    with pytest.raises(TransformError, match="no field 'region'"):
        chain.apply(rec({"id": 1}))


def test_filter_with_predicates_and_negate():
    base = {"predicates": "raw,tomb,hdr",
            "predicates.raw.type": "TopicNameMatches", "predicates.raw.pattern": ".*-raw",
            "predicates.tomb.type": "RecordIsTombstone",
            "predicates.hdr.type": "HasHeaderKey", "predicates.hdr.name": "skip"}
    drop_raw = build_transforms({**base, "transforms": "f", "transforms.f.type": "Filter",
                                 "transforms.f.predicate": "raw"})
    assert drop_raw.apply(rec(1)) is None
    assert drop_raw.apply(rec(1, topic="orders")) is not None
    keep_raw = build_transforms({**base, "transforms": "f", "transforms.f.type": "Filter",
                                 "transforms.f.predicate": "raw", "transforms.f.negate": "true"})
    assert keep_raw.apply(rec(1)) is not None and keep_raw.apply(rec(1, topic="x")) is None
    tomb = build_transforms({**base, "transforms": "f", "transforms.f.type": "Filter",
                             "transforms.f.predicate": "tomb"})
    assert tomb.apply(rec(None)) is None and tomb.apply(rec(0)) is not None
    hdr = build_transforms({**base, "transforms": "f", "transforms.f.type": "Filter",
                            "transforms.f.predicate": "hdr"})
    assert hdr.apply(rec(1, headers=(("skip", b""),))) is None and hdr.apply(rec(1))


def test_regex_router_renames_topics_with_java_groups():
    chain = build_transforms({"transforms": "r", "transforms.r.type": "RegexRouter",
                              "transforms.r.regex": "(.*)-raw",
                              "transforms.r.replacement": "$1-clean"})
    assert chain.apply(rec(1)).topic == "orders-clean"
    assert chain.apply(rec(1, topic="raw-orders")).topic == "raw-orders"  # whole-name match
    src = SourceRecord({"f": 1}, {"p": 1}, "a-raw", value="x")
    assert chain.apply(src).topic == "a-clean"


def test_configuration_problems_are_all_reported():
    with pytest.raises(ConnectConfigError) as e:
        build_transforms({"transforms": "a,b,c", "transforms.a.type": "RegexRouter",
                          "transforms.a.regex": "(", "transforms.a.replacement": "x",
                          "transforms.b.type": "Filter", "transforms.b.predicate": "missing",
                          "transforms.c.type": "ValueToKey", "transforms.c.feilds": "id"})
    p = "\n".join(e.value.problems)
    assert "invalid regex" in p and "no predicate 'missing'" in p
    assert "did you mean 'fields'" in p
