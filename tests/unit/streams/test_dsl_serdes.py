"""Serdes: Kafka's byte encodings, round trips, clear errors, config names."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rillet.streams import serdes
from rillet.streams.api import Change
from rillet.streams.serdes import ChangeSerde, SerdeError, serde_of


def test_kafka_encodings():
    assert serdes.Long.serialize("t", 1) == b"\x00\x00\x00\x00\x00\x00\x00\x01"
    assert serdes.Long.serialize("t", -1) == b"\xff" * 8
    assert serdes.Integer.serialize("t", 258) == b"\x00\x00\x01\x02"
    assert serdes.Double.serialize("t", 1.0) == bytes.fromhex("3ff0000000000000")
    assert serdes.Double.serialize("t", 2) == bytes.fromhex("4000000000000000")
    assert serdes.String.serialize("t", "héllo") == "héllo".encode()
    assert serdes.Json.serialize("t", {"a": [1, 2]}) == b'{"a":[1,2]}'
    assert serdes.Bytes.serialize("t", bytearray(b"xy")) == b"xy"


@settings(max_examples=40, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1))
def test_long_round_trip(n):
    assert serdes.Long.deserialize("t", serdes.Long.serialize("t", n)) == n


@settings(max_examples=40, deadline=None)
@given(st.integers(-(2**31), 2**31 - 1))
def test_integer_round_trip(n):
    assert serdes.Integer.deserialize("t", serdes.Integer.serialize("t", n)) == n


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False))
def test_double_round_trip(x):
    assert serdes.Double.deserialize("t", serdes.Double.serialize("t", x)) == x


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text()
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=5)


@settings(max_examples=40, deadline=None)
@given(JSON, st.text())
def test_json_and_string_round_trip(value, text):
    assert serdes.Json.deserialize("t", serdes.Json.serialize("t", value)) == value
    assert serdes.String.deserialize("t", serdes.String.serialize("t", text)) == text


@pytest.mark.parametrize("serde, value", [
    (serdes.Long, "1"), (serdes.Long, 2**63), (serdes.Long, True), (serdes.Integer, 2**31),
    (serdes.Integer, 1.5), (serdes.Double, "x"), (serdes.String, b"x"), (serdes.Bytes, "x"),
    (serdes.Json, {1, 2}), (serdes.Json, float("nan")),
])
def test_serialize_refuses_wrong_values(serde, value):
    with pytest.raises(SerdeError, match="topic 'out'"):
        serde.serialize("out", value)


@pytest.mark.parametrize("serde, data", [
    (serdes.Long, b"\x00" * 7), (serdes.Integer, b"\x00" * 5), (serdes.Double, b""),
    (serdes.String, b"\xff\xfe"), (serdes.Json, b"{nope"),
])
def test_deserialize_refuses_bad_bytes(serde, data):
    with pytest.raises(SerdeError, match="topic 'in'") as e:
        serde.deserialize("in", data)
    assert isinstance(e.value, ValueError)
    assert e.value.topic == "in"


def test_none_is_a_tombstone_never_serialized():
    assert serdes.to_bytes(serdes.Long, "t", None) is None
    assert serdes.from_bytes(serdes.Long, "t", None) is None


def test_serde_of_names_objects_and_paths():
    assert serde_of("string") is serdes.String
    assert serde_of(" LONG ") is serdes.Long
    assert serde_of(serdes.Json) is serdes.Json
    assert serde_of("rillet.streams.serdes:Double") is serdes.Double
    assert isinstance(serde_of(serdes.StringSerde), serdes.StringSerde)


def test_serde_of_unknown_name_suggests():
    with pytest.raises(ValueError, match=r"unknown serde 'strng'; did you mean 'string'\?"):
        serde_of("strng")
    with pytest.raises(ValueError, match="known: bytes, string, json, long, integer, double"):
        serde_of("avro")
    with pytest.raises(ValueError, match="cannot be imported"):
        serde_of("rillet.streams.serdes:Nope")
    with pytest.raises(TypeError, match="is not a serde"):
        serde_of(42)


VALUES = st.none() | st.text(max_size=20)


@settings(max_examples=40, deadline=None)
@given(VALUES, VALUES)
def test_change_serde_round_trip(new, old):
    serde = ChangeSerde(serdes.String)
    assert serde.deserialize("t", serde.serialize("t", Change(new, old))) == Change(new, old)


def test_change_serde_refuses_bad_bytes():
    serde = ChangeSerde(serdes.String)
    for bad in (b"", b"\x07", b"\x03\x00", b"\x03" + struct.pack(">I", 9) + b"ab"):
        with pytest.raises(SerdeError):
            serde.deserialize("t", bad)
