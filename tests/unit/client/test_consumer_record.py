"""ConsumerRecord keeps the named-tuple API; FetchedRecord (what poll() returns) is one."""

from __future__ import annotations

import copy
import pickle

import pytest

from rillet.records import ConsumerRecord, FetchedRecord

FIELDS = ("t", 2, 7, 1234, b"k", b"v", (("h", b"x"),))


def test_construction_and_fields() -> None:
    r = ConsumerRecord(*FIELDS)
    assert r == FIELDS and hash(r) == hash(FIELDS)
    assert (r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, r.headers) == FIELDS
    kw = ConsumerRecord(topic="t", partition=2, offset=7, timestamp=1234, key=b"k", value=b"v")
    assert kw.headers == () and kw[:6] == FIELDS[:6] and type(kw) is ConsumerRecord
    assert ConsumerRecord._fields == ("topic", "partition", "offset", "timestamp", "key",
                                      "value", "headers")
    with pytest.raises(TypeError):
        ConsumerRecord("t", 2)
    with pytest.raises(AttributeError):
        r.value = b"w"


def test_named_tuple_helpers() -> None:
    r = ConsumerRecord(*FIELDS)
    assert r._replace(value=None) == FIELDS[:5] + (None,) + FIELDS[6:]
    assert r._asdict()["offset"] == 7 and list(r._asdict()) == list(ConsumerRecord._fields)
    assert ConsumerRecord._make(FIELDS) == r
    with pytest.raises(ValueError):
        r._replace(nope=1)
    with pytest.raises(TypeError):
        ConsumerRecord._make(FIELDS[:3])
    assert repr(r).startswith("ConsumerRecord(topic='t', partition=2, offset=7,")
    match r:
        case ConsumerRecord(topic, partition, offset):
            assert (topic, partition, offset) == ("t", 2, 7)


def test_fetched_records_are_consumer_records() -> None:
    f = FetchedRecord(FIELDS)  # one iterable: tuple's own constructor
    assert isinstance(f, ConsumerRecord) and f == ConsumerRecord(*FIELDS)
    assert f.value == b"v" and f.headers == FIELDS[6]
    assert f._replace(key=None).key is None
    for clone in (copy.copy(f), copy.deepcopy(f), pickle.loads(pickle.dumps(f))):
        assert clone == f and isinstance(clone, ConsumerRecord)
    assert pickle.loads(pickle.dumps(ConsumerRecord(*FIELDS))) == f
