"""rillet.streams.api.Record: the value object every node makes per record (immutable,
compared and hashed by its fields, a copy with ``with_``)."""

import dataclasses
import pickle

import pytest

from rillet.streams.api import Record


def test_a_record_is_immutable_and_compared_by_its_fields():
    r = Record("k", 1, 10)
    assert (r.key, r.value, r.timestamp, r.headers) == ("k", 1, 10, ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del r.key
    assert r == Record("k", 1, 10, ()) and r != Record("k", 1, 11)
    assert r != ("k", 1, 10, ())  # not a tuple
    assert len({r, Record("k", 1, 10)}) == 1
    assert repr(r) == "Record(key='k', value=1, timestamp=10, headers=())"
    assert pickle.loads(pickle.dumps(r)) == r
    match r:
        case Record(key, value, timestamp):
            assert (key, value, timestamp) == ("k", 1, 10)


def test_with_makes_a_copy_and_refuses_unknown_fields():
    r = Record("k", 1, 10, (("h", b"v"),))
    assert r.with_(value=2) == Record("k", 2, 10, (("h", b"v"),)) and r.value == 1
    with pytest.raises(TypeError, match="no field"):
        r.with_(valu=2)
