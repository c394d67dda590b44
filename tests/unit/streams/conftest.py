"""Fixtures of the streams unit tests: a dict-backed key-value store, the stand-in for
``stores.build`` while the state-store part is built elsewhere (api.KeyValueStore +
api.StateStore, changelogging through the collector as the real stores do)."""

from __future__ import annotations

from typing import Any

import pytest

from rillet.streams.api import StoreSpec, TaskId
from rillet.streams.serdes import from_bytes, to_bytes


class DictStore:
    def __init__(self, spec: StoreSpec, task_id: TaskId) -> None:
        if spec.kind != "kv":
            raise NotImplementedError(f"DictStore is key-value only, not {spec.kind}")
        self.name = spec.name
        self.spec = spec
        self._data: dict[bytes, bytes] = {}
        self._collector = None
        self._changelog = None

    def open(self, task_dir, collector, changelog) -> None:
        self._collector, self._changelog = collector, changelog

    def _k(self, key: Any) -> bytes:
        return self.spec.key_serde.serialize(self.name, key)

    def get(self, key: Any) -> Any:
        return from_bytes(self.spec.value_serde, self.name, self._data.get(self._k(key)))

    def put(self, key: Any, value: Any) -> None:
        kb, vb = self._k(key), to_bytes(self.spec.value_serde, self.name, value)
        if vb is None:
            self._data.pop(kb, None)
        else:
            self._data[kb] = vb
        if self._changelog is not None:
            topic, partition = self._changelog
            self._collector.send(topic, kb, vb, 0, (), partition)

    def delete(self, key: Any) -> Any:
        old = self.get(key)
        self.put(key, None)
        return old

    def all(self):
        for kb in sorted(self._data):
            yield (self.spec.key_serde.deserialize(self.name, kb),
                   self.spec.value_serde.deserialize(self.name, self._data[kb]))

    def range(self, lo, hi):
        lo, hi = self._k(lo), self._k(hi)
        return ((k, v) for k, v in self.all() if lo <= self._k(k) <= hi)

    def __len__(self) -> int:
        return len(self._data)

    def restore(self, records) -> None:
        for kb, vb in records:
            if vb is None:
                self._data.pop(kb, None)
            else:
                self._data[kb] = vb

    def checkpoint(self):
        return None

    def commit(self, changelog_offset) -> None:
        pass

    def close(self) -> None:
        pass

    def wipe(self) -> None:
        self._data.clear()


@pytest.fixture
def store_factory():
    return DictStore
