"""Converters: round trips, tombstones and typed errors."""

from __future__ import annotations

import pytest
from rillet.connectors.converters import make_converter
from rillet.connectors.errors import ConversionError, PluginNotFoundError


@pytest.mark.parametrize("name,value", [
    ("json", {"a": [1, 2.5, "é", None, True]}), ("string", "line é"), ("bytes", b"\x00\xff"),
    ("cbor", {"a": b"\x00", "n": [1, {"x": 2}]}),
    ("org.apache.kafka.connect.json.JsonConverter", [1, "x"]),
])
def test_round_trip_and_null(name, value):
    c = make_converter(name, {}, is_key=False)
    assert c.deserialize("t", c.serialize("t", value)) == value
    assert c.serialize("t", None) is None and c.deserialize("t", None) is None


def test_bad_bytes_raise_conversion_error():
    with pytest.raises(ConversionError, match="JSON"):
        make_converter("json", {}, False).deserialize("t", b"{not json")
    with pytest.raises(ConversionError, match="UTF-8"):
        make_converter("string", {}, False).deserialize("t", b"\xff\xfe")
    with pytest.raises(ConversionError, match="CBOR"):
        make_converter("cbor", {}, False).deserialize("t", b"\xff\xff\xff")
    with pytest.raises(ConversionError, match="JSON"):
        make_converter("json", {}, False).serialize("t", {"b": b"x"})
    with pytest.raises(ConversionError, match="needs bytes"):
        make_converter("bytes", {}, False).serialize("t", 5)


def test_json_schema_envelope_is_unwrapped_when_enabled():
    data = b'{"schema": {"type": "string"}, "payload": "hi"}'
    assert make_converter("json", {"schemas.enable": "true"}, False).deserialize("t", data) == "hi"
    assert make_converter("json", {}, False).deserialize("t", data)["payload"] == "hi"


def test_unknown_converter():
    with pytest.raises(PluginNotFoundError, match="converter"):
        make_converter("yaml", {}, False)
