"""Converters between the Python values connectors see and the bytes stored in topics.

``key.converter`` / ``value.converter`` name one of ``json`` (the default), ``string``,
``bytes``, ``cbor``, Kafka's class names for the first three, or ``module:Class``. Settings
come from the prefixed keys (``value.converter.schemas.enable``). ``None`` always maps to
``None`` (a null key, or a tombstone value).

- json: any JSON value; ``schemas.enable=true`` unwraps Kafka's ``{"schema", "payload"}``
  envelope on read (writes are always schemaless).
- string: str <-> UTF-8 (non-str values are written with ``str()``).
- bytes: bytes as they are (str is UTF-8 encoded on write).
- cbor: any CBOR value (dicts, lists, bytes, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import cbor2

from .config import _to_bool
from .errors import ConversionError
from .plugins import load_class


class Converter:
    """``serialize`` (value -> bytes, for sources) and ``deserialize`` (bytes -> value, for
    sinks). Both raise ConversionError on bad input."""

    def configure(self, config: Mapping[str, Any], is_key: bool) -> None:
        self.is_key = is_key

    def serialize(self, topic: str, value: Any) -> bytes | None:
        raise NotImplementedError

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        raise NotImplementedError


class JsonConverter(Converter):
    schemas_enable = False

    def configure(self, config: Mapping[str, Any], is_key: bool) -> None:
        super().configure(config, is_key)
        self.schemas_enable = _to_bool(config.get("schemas.enable", False))

    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as e:
            raise ConversionError(f"cannot write {type(value).__name__} as JSON: {e}") from e

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConversionError(f"not valid JSON: {e}") from e
        if self.schemas_enable and isinstance(value, dict) and set(value) == {"schema",
                                                                              "payload"}:
            return value["payload"]
        return value


class StringConverter(Converter):
    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        if isinstance(value, bytes):
            return value
        return str(value).encode()

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return bytes(data).decode()
        except UnicodeDecodeError as e:
            raise ConversionError(f"not valid UTF-8: {e}") from e


class BytesConverter(Converter):
    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            return value.encode()
        raise ConversionError(f"the bytes converter needs bytes, got {type(value).__name__}")

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        return None if data is None else bytes(data)


class CborConverter(Converter):
    def serialize(self, topic: str, value: Any) -> bytes | None:
        if value is None:
            return None
        try:
            return cbor2.dumps(value)
        except (cbor2.CBOREncodeError, TypeError, ValueError) as e:
            raise ConversionError(f"cannot write {type(value).__name__} as CBOR: {e}") from e

    def deserialize(self, topic: str, data: bytes | None) -> Any:
        if data is None:
            return None
        try:
            return cbor2.loads(data)
        except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError) as e:
            raise ConversionError(f"not valid CBOR: {e}") from e


CONVERTER_ALIASES: dict[str, Any] = {
    "json": JsonConverter,
    "string": StringConverter,
    "bytes": BytesConverter,
    "cbor": CborConverter,
    "org.apache.kafka.connect.json.JsonConverter": JsonConverter,
    "org.apache.kafka.connect.storage.StringConverter": StringConverter,
    "org.apache.kafka.connect.converters.ByteArrayConverter": BytesConverter,
}


def make_converter(name: str, config: Mapping[str, Any], is_key: bool) -> Converter:
    """Build and configure a converter; ``config`` holds its prefixed settings, unprefixed."""
    cls = load_class(name, "converter", CONVERTER_ALIASES)
    conv = cls()
    conv.configure(config, is_key)
    return conv
