"""Serdes (docs/streams.md "The DSL"): how keys and values become bytes and back.

``Bytes``, ``String``, ``Json``, ``Long``, ``Integer``, ``Double`` are ready-made instances
with Kafka's encodings (Long: 8-byte big-endian two's complement, Integer: 4-byte, Double:
IEEE 754 binary64 big-endian; String: UTF-8), so a rillet app reads and writes the same
bytes as a Java Kafka Streams app. Any object with ``serialize(topic, data) -> bytes`` and
``deserialize(topic, data) -> object`` is a serde too (api.Serde).

``None`` is never passed to a serde: it is a tombstone and stays ``None`` on the wire;
:func:`to_bytes` / :func:`from_bytes` apply that rule for callers. A value a serde cannot
encode or decode raises :class:`SerdeError` (a ``ValueError``) naming the topic, so the
runtime can hand a bad record to the deserialization exception handler.
"""

from __future__ import annotations

import difflib
import json
import struct
from typing import Any

from rillet._imports import import_object

from .api import Change, Serde


class SerdeError(ValueError):
    """A key or value the serde cannot encode/decode. ``topic``: where it was going or came
    from; ``serde``: the serde's name."""

    def __init__(self, serde: str, topic: str, reason: str) -> None:
        super().__init__(f"{serde} serde, topic {topic!r}: {reason}")
        self.serde = serde
        self.topic = topic
        self.reason = reason


class BytesSerde:
    """Bytes as they are (``bytearray``/``memoryview`` accepted on the way out)."""

    name = "bytes"

    def serialize(self, topic: str, data: Any) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, bytearray | memoryview):
            return bytes(data)
        raise SerdeError(self.name, topic, f"expected bytes, got {type(data).__name__}")

    def deserialize(self, topic: str, data: bytes) -> Any:
        return bytes(data)

    def __repr__(self) -> str:
        return "serdes.Bytes"


class StringSerde:
    """``str`` in ``encoding`` (UTF-8 by default, as Kafka's StringSerializer)."""

    name = "string"

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    def serialize(self, topic: str, data: Any) -> bytes:
        if data.__class__ is not str and not isinstance(data, str):
            raise SerdeError(self.name, topic, f"expected str, got {type(data).__name__}")
        return data.encode(self.encoding)

    def deserialize(self, topic: str, data: bytes) -> Any:
        try:
            if data.__class__ is bytes:
                return data.decode(self.encoding)
            return bytes(data).decode(self.encoding)
        except UnicodeDecodeError as e:
            raise SerdeError(self.name, topic, f"not {self.encoding}: {e}") from None

    def __repr__(self) -> str:
        return "serdes.String" if self.encoding == "utf-8" else f"StringSerde({self.encoding!r})"


class JsonSerde:
    """Any JSON value, compact UTF-8 JSON on the wire."""

    name = "json"

    def serialize(self, topic: str, data: Any) -> bytes:
        try:
            return json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode()
        except (TypeError, ValueError) as e:
            raise SerdeError(self.name, topic, str(e)) from None

    def deserialize(self, topic: str, data: bytes) -> Any:
        try:
            return json.loads(bytes(data))
        except (UnicodeDecodeError, ValueError) as e:
            raise SerdeError(self.name, topic, f"not JSON: {e}") from None

    def __repr__(self) -> str:
        return "serdes.Json"


class _StructSerde:
    name = ""
    fmt = ""
    kinds: tuple[type, ...] = (int,)

    def __init__(self) -> None:
        self._struct = struct.Struct(self.fmt)

    def serialize(self, topic: str, data: Any) -> bytes:
        if isinstance(data, bool) or not isinstance(data, self.kinds):
            raise SerdeError(self.name, topic, f"expected {self.kinds[0].__name__}, got "
                             f"{type(data).__name__}")
        try:
            return self._struct.pack(data)
        except (struct.error, OverflowError) as e:
            raise SerdeError(self.name, topic, f"{data!r}: {e}") from None

    def deserialize(self, topic: str, data: bytes) -> Any:
        if len(data) != self._struct.size:
            raise SerdeError(self.name, topic, f"expected {self._struct.size} bytes, got "
                             f"{len(data)}")
        return self._struct.unpack(data)[0]

    def __repr__(self) -> str:
        return f"serdes.{self.name.capitalize()}"


class LongSerde(_StructSerde):
    """Kafka's LongSerde: 8-byte big-endian signed."""

    name, fmt = "long", ">q"


class IntegerSerde(_StructSerde):
    """Kafka's IntegerSerde: 4-byte big-endian signed."""

    name, fmt = "integer", ">i"


class DoubleSerde(_StructSerde):
    """Kafka's DoubleSerde: IEEE 754 binary64, big-endian (ints accepted on the way out)."""

    name, fmt, kinds = "double", ">d", (float, int)


Bytes = BytesSerde()
String = StringSerde()
Json = JsonSerde()
Long = LongSerde()
Integer = IntegerSerde()
Double = DoubleSerde()


class ChangeSerde:
    """A table's ``Change(new, old)`` through a repartition topic (``Table.group_by``):
    one flag byte (1: new present, 2: old present), then with both present the new value's
    length (4 bytes big-endian), the new value and the old one; ``inner`` encodes each
    (None: the default value serde, filled in by ``Topology.compile``)."""

    name = "change"

    def __init__(self, inner: Serde | None) -> None:
        self.inner = inner

    def serialize(self, topic: str, data: Any) -> bytes:
        if not isinstance(data, Change):
            raise SerdeError(self.name, topic, f"expected Change, got {type(data).__name__}")
        assert self.inner is not None
        new = to_bytes(self.inner, topic, data.new)
        old = to_bytes(self.inner, topic, data.old)
        flags = (new is not None) | (old is not None) << 1
        if flags == 3:
            return b"\x03" + struct.pack(">I", len(new)) + new + old
        return bytes([flags]) + (new if new is not None else old or b"")

    def deserialize(self, topic: str, data: bytes) -> Any:
        assert self.inner is not None
        data = bytes(data)
        if not data or data[0] > 3:
            raise SerdeError(self.name, topic, "bad flag byte")
        flags, body = data[0], data[1:]
        if flags == 3:
            if len(body) < 4:
                raise SerdeError(self.name, topic, "truncated")
            (n,) = struct.unpack_from(">I", body)
            if n > len(body) - 4:
                raise SerdeError(self.name, topic, "truncated")
            return Change(self.inner.deserialize(topic, body[4:4 + n]),
                          self.inner.deserialize(topic, body[4 + n:]))
        if flags == 1:
            return Change(self.inner.deserialize(topic, body), None)
        if flags == 2:
            return Change(None, self.inner.deserialize(topic, body))
        return Change(None, None)

    def __repr__(self) -> str:
        return f"ChangeSerde({self.inner!r})"


BY_NAME: dict[str, Serde] = {
    "bytes": Bytes, "string": String, "json": Json, "long": Long, "integer": Integer,
    "double": Double,
}


def serde_of(name_or_obj: Any) -> Serde:
    """A serde from a config value: a name (``"string"``, case-insensitive), a
    ``"module:attribute"`` path to a serde object or class, or a serde object itself."""
    if isinstance(name_or_obj, str):
        name = name_or_obj.strip()
        if ":" in name:
            return _import_serde(name)
        found = BY_NAME.get(name.lower())
        if found is None:
            close = difflib.get_close_matches(name.lower(), BY_NAME, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown serde {name_or_obj!r}{hint} (known: "
                             f"{', '.join(BY_NAME)}, or 'module:attribute')")
        return found
    if isinstance(name_or_obj, type):
        name_or_obj = name_or_obj()
    if not isinstance(name_or_obj, Serde):
        raise TypeError(f"{name_or_obj!r} is not a serde: it needs serialize(topic, data) "
                        "and deserialize(topic, data)")
    return name_or_obj


def _import_serde(path: str) -> Serde:
    try:
        obj = import_object(path)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"serde {path!r} cannot be imported: {e}") from None
    return serde_of(obj)


def to_bytes(serde: Serde, topic: str, data: Any) -> bytes | None:
    """``serde.serialize`` with None kept as None (a tombstone)."""
    return None if data is None else serde.serialize(topic, data)


def from_bytes(serde: Serde, topic: str, data: bytes | None) -> Any:
    """``serde.deserialize`` with None kept as None."""
    return None if data is None else serde.deserialize(topic, data)


__all__ = [
    "BY_NAME", "Bytes", "BytesSerde", "ChangeSerde", "Double", "DoubleSerde", "Integer",
    "IntegerSerde", "Json", "JsonSerde", "Long", "LongSerde", "SerdeError", "String", "StringSerde",
    "from_bytes", "serde_of", "to_bytes",
]
