"""Helpers of the state store tests (test_stores*.py): small serdes (the tests do not
depend on serdes.py), a changelog collector, store factories and the reference models the
stores are checked against."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from rillet.streams import stores
from rillet.streams.api import StoreSpec, TaskId


class Str:
    @staticmethod
    def serialize(topic: str, data: str) -> bytes:
        return data.encode()

    @staticmethod
    def deserialize(topic: str, data: bytes) -> str:
        return data.decode()


class Long:
    _S = struct.Struct(">q")

    @classmethod
    def serialize(cls, topic: str, data: int) -> bytes:
        return cls._S.pack(data)

    @classmethod
    def deserialize(cls, topic: str, data: bytes) -> int:
        return cls._S.unpack(data)[0]


@dataclass
class Collector:
    """A RecordCollector keeping what is sent; ``changelog()`` as restore() takes it."""

    sent: list[tuple] = field(default_factory=list)

    def send(self, topic, key, value, timestamp, headers=(), partition=None) -> None:
        self.sent.append((topic, key, value, timestamp, headers, partition))

    def changelog(self) -> list[tuple[bytes, bytes | None]]:
        return [(key, value) for _, key, value, *_ in self.sent]


TASK = TaskId(0, 1)
CHANGELOG = ("app-s-changelog", 1)


def spec(kind: str, backend: str, **kw) -> StoreSpec:
    return StoreSpec(kw.pop("name", "s"), kind, Str(), Long(), in_memory=backend == "memory",
                     **kw)


def opened(kind: str, backend: str, task_dir=None, collector=None, **kw):
    store = stores.build(spec(kind, backend, **kw), TASK)
    store.open(task_dir, collector, CHANGELOG if collector is not None else None)
    return store


def kb(key: str) -> bytes:
    return key.encode()
