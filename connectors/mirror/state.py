"""What a running ``rillet mirror start`` reports about its flows, for ``rillet mirror status``.

Kafka's MirrorMaker 2 shows a task's state (RUNNING, FAILED with its trace) through Connect's
status topic and REST API. Neither helps when the cluster holding them is the one that is
down, which is exactly when the state matters; so the mirror process writes its flows' states
to a small local file, ``$RILLET_CONFIG_DIR/mirror/<hash of the properties path>.json``
(default ``~/.config/rillet/mirror/``), replaced atomically on every change::

    {"pid": 4242, "properties": "/etc/mm2.properties", "updated_ms": 1765000000000,
     "flows": {"A->B": {"state": "retrying", "since_ms": ..., "error": "...",
                        "retry_at_ms": ...}}}

States: ``starting`` (connecting, reading its progress), ``running``, ``retrying`` (a cluster
is unreachable or an operation failed: the flow is rebuilt after ``retry_at_ms``, with
back-off). A running flow also stamps ``last_step_ms`` (at most once a second): a flow whose
call to a cluster hangs (a client waits up to ``request.timeout.ms``, 30 s, before it gives
up and the flow turns ``retrying``) shows as ``stalled`` meanwhile. ``status`` also says
whether the pid is still alive (a killed mirror leaves its last file behind).

Threads: ``FlowStates`` is used by the mirror's one loop thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from rillet.profile import config_dir


def state_path(properties: Path) -> Path:
    digest = hashlib.sha256(str(properties.resolve()).encode()).hexdigest()[:16]
    return config_dir() / "mirror" / f"{digest}.json"


class FlowStates:
    """The mirror process's side: records transitions and rewrites the file on each."""

    def __init__(self, path: Path | None, properties: Path | None = None) -> None:
        self.path = path
        self.doc: dict[str, Any] = {"pid": os.getpid(),
                                    "properties": str(properties) if properties else None,
                                    "flows": {}}

    def set(self, flow: str, state: str, error: str | None = None,
            retry_in_s: float | None = None) -> None:
        now = int(time.time() * 1000)
        old = self.doc["flows"].get(flow)
        if old is not None and old["state"] == state and old.get("error") == error:
            return  # no transition: no write
        entry: dict[str, Any] = {"state": state, "last_step_ms": now,
                                 "since_ms": old["since_ms"] if old and old["state"] == state
                                 else now}
        if error is not None:
            entry["error"] = error
        if retry_in_s is not None:
            entry["retry_at_ms"] = now + int(retry_in_s * 1000)
        self.doc["flows"][flow] = entry
        self.doc["updated_ms"] = now
        self._write()

    def stepped(self, flow: str) -> None:
        """A step of a running flow completed; rewrites the file at most once a second."""
        entry = self.doc["flows"].get(flow)
        now = int(time.time() * 1000)
        if entry is None or now - entry.get("last_step_ms", 0) < 1000:
            return
        entry["last_step_ms"] = self.doc["updated_ms"] = now
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.doc))
            os.replace(tmp, self.path)
        except OSError:
            pass  # the report is a convenience: never stop mirroring for it


def read_states(properties: Path) -> dict[str, Any] | None:
    """The last report of a mirror run with ``properties``, with ``alive`` added; None if
    no mirror wrote one."""
    try:
        doc = json.loads(state_path(properties).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("flows"), dict):
        return None
    doc["alive"] = _alive(doc.get("pid"))
    return doc


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not reaped yet) is not running
        return " Z " not in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except (OSError, IndexError):
        return True


STALLED_AFTER_MS = 5000


def describe(entry: dict[str, Any], now_ms: int) -> str:
    """One line for ``status``: ``retrying for 12 s (next attempt in 3 s): <error>``."""
    state = str(entry.get("state", "?"))
    text = f"{state} for {max(0, now_ms - int(entry.get('since_ms', now_ms))) // 1000} s"
    idle_ms = now_ms - int(entry.get("last_step_ms", now_ms))
    if state == "running" and idle_ms > STALLED_AFTER_MS:
        text += f", stalled: no step completed for {idle_ms // 1000} s (waiting on a cluster)"
    if state == "retrying" and "retry_at_ms" in entry:
        text += f" (next attempt in {max(0, int(entry['retry_at_ms']) - now_ms) / 1000:.0f} s)"
    if entry.get("error"):
        text += f": {entry['error']}"
    return text
