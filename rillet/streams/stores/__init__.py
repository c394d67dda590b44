"""State stores (docs/streams.md "State stores"): key-value, window and session stores, in
memory or on SQLite (stdlib ``sqlite3``), each change also sent to the store's changelog
topic, restored from it, checkpointed with the local state.

``build(spec, task_id)`` returns one object that is both the typed store of ``spec.kind``
(api.KeyValueStore / WindowStore / SessionStore: what processors call) and an
api.StateStore (what the task drives: ``open``, ``restore``, ``checkpoint``, ``commit``,
``close``, ``wipe``).

Modules: ``typed.py`` and ``typed_windows.py`` (the typed stores, serdes and
changelogging), ``memory.py`` and
``sqlite.py`` (the byte backends), ``keys.py`` (Kafka's changelog key encodings of window
and session stores), ``errors.py``.
"""

from __future__ import annotations

import re

from ..api import StoreSpec, TaskId
from .errors import InvalidStateStoreError, StoreFileError
from .memory import MemoryKeyValueBytes, MemorySessionBytes, MemoryWindowBytes
from .sqlite import (
    DEFAULT_CACHE_ENTRIES,
    SqliteKeyValueBytes,
    SqliteSessionBytes,
    SqliteWindowBytes,
)
from .typed import KeyValueStoreImpl
from .typed_windows import SessionStoreImpl, WindowStoreImpl

# a store name becomes part of a topic name and of a file name: Kafka's legal topic chars
_LEGAL_NAME = re.compile(r"[A-Za-z0-9._-]{1,200}")

Store = KeyValueStoreImpl | WindowStoreImpl | SessionStoreImpl


def check_spec(spec: StoreSpec) -> None:
    """ValueError naming the problem if ``spec`` cannot make a store."""
    if not _LEGAL_NAME.fullmatch(spec.name) or spec.name in (".", ".."):
        raise ValueError(f"store name {spec.name!r}: use 1-200 of [A-Za-z0-9._-] (it names "
                         f"the changelog topic and the store's file)")
    if spec.kind not in ("kv", "window", "session"):
        raise ValueError(f"store {spec.name!r}: kind must be kv, window or session, "
                         f"not {spec.kind!r}")
    if spec.retention_ms is not None and spec.retention_ms < 0:
        raise ValueError(f"store {spec.name!r}: retention_ms must be >= 0")
    if spec.window_size_ms is not None and spec.window_size_ms < 0:
        raise ValueError(f"store {spec.name!r}: window_size_ms must be >= 0")
    if spec.retain_duplicates and spec.kind != "window":
        raise ValueError(f"store {spec.name!r}: retain_duplicates is for window stores")


def build(spec: StoreSpec, task_id: TaskId, *,
          cache_entries: int = DEFAULT_CACHE_ENTRIES) -> Store:
    """A task's instance of the store ``spec`` (not yet open: the task calls ``open``).
    ``cache_entries``: the SQLite stores' write-back cache (sqlite.py), 0 for none."""
    check_spec(spec)
    if spec.in_memory:
        if spec.kind == "kv":
            return KeyValueStoreImpl(spec, task_id, MemoryKeyValueBytes(spec.name))
        if spec.kind == "window":
            return WindowStoreImpl(spec, task_id,
                                   MemoryWindowBytes(spec.name, spec.retain_duplicates))
        return SessionStoreImpl(spec, task_id, MemorySessionBytes(spec.name))
    if spec.kind == "kv":
        return KeyValueStoreImpl(spec, task_id, SqliteKeyValueBytes(spec.name, cache_entries))
    if spec.kind == "window":
        return WindowStoreImpl(spec, task_id,
                               SqliteWindowBytes(spec.name, spec.retain_duplicates,
                                                 cache_entries))
    return SessionStoreImpl(spec, task_id, SqliteSessionBytes(spec.name))


__all__ = ["DEFAULT_CACHE_ENTRIES", "InvalidStateStoreError", "KeyValueStoreImpl", "SessionStoreImpl", "Store",
           "StoreFileError", "WindowStoreImpl", "build", "check_spec"]
