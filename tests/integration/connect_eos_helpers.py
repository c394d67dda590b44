"""Plugins for tests/integration/test_connect_eos.py, loaded by the worker process as
``tests.integration.connect_eos_helpers:Class`` (the test puts the worktree on PYTHONPATH)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rillet.connectors.api import SourceRecord
from rillet.connectors.config import ConfigDef, key
from rillet.connectors.transforms import Transform


class FailWhileMarked(Transform):
    """Raises on a record whose value contains ``match`` while the file ``marker`` exists:
    an injected failure in the middle of a transaction (records before it already sent)."""

    config_def = ConfigDef([key("marker"), key("match")])

    def apply(self, record: SourceRecord) -> Any:
        if self.config["match"] in str(record.value) and Path(self.config["marker"]).exists():
            raise RuntimeError(f"injected failure on {record.value!r}")
        return record
