"""State stores (docs/streams.md "State stores"): key-value, window and session stores, in
memory or on SQLite (stdlib ``sqlite3``), each change also sent to the store's changelog
topic, restored from it, checkpointed with the local state.

SKELETON (lead): implemented by the state-store helper. ``build(spec, task_id)`` returns one
object that is both the typed store of ``spec.kind`` (api.KeyValueStore / WindowStore /
SessionStore: what processors call) and an api.StateStore (what the task drives).
"""

from __future__ import annotations

from typing import Any

from ..api import StoreSpec, TaskId


def build(spec: StoreSpec, task_id: TaskId) -> Any:
    raise NotImplementedError  # streams-state
