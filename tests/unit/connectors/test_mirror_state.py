"""The mirror's local state report (rillet.connectors.mirror.state), read by `mirror status`."""

from __future__ import annotations

import json
import os

from rillet.connectors.mirror.state import FlowStates, describe, read_states, state_path


def test_transitions_are_written_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path / "cfg"))
    props = tmp_path / "mm2.properties"
    props.write_text("")
    assert read_states(props) is None                      # no mirror ran with this file
    states = FlowStates(state_path(props), props)
    states.set("A->B", "starting")
    states.set("A->B", "retrying", "TimeoutError: B away", retry_in_s=2)
    doc = read_states(props)
    assert doc["alive"] and doc["pid"] == os.getpid()      # this process wrote it
    entry = doc["flows"]["A->B"]
    assert entry["state"] == "retrying" and entry["error"] == "TimeoutError: B away"
    assert describe(entry, entry["since_ms"] + 1500) == (
        "retrying for 1 s (next attempt in 0 s): TimeoutError: B away")
    states.set("A->B", "running")
    assert read_states(props)["flows"]["A->B"]["state"] == "running"
    # another properties file has its own report
    other = tmp_path / "other.properties"
    other.write_text("")
    assert state_path(other) != state_path(props) and read_states(other) is None


def test_a_running_flow_without_steps_shows_stalled_and_a_dead_pid_not_alive(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))
    props = tmp_path / "mm2.properties"
    states = FlowStates(state_path(props), props)
    states.set("A->B", "running")
    entry = read_states(props)["flows"]["A->B"]
    assert describe(entry, entry["last_step_ms"] + 1000) == "running for 1 s"
    assert "stalled: no step completed for 12 s" in describe(entry, entry["last_step_ms"] + 12_000)
    doc = json.loads(state_path(props).read_text())
    doc["pid"] = 2**22 + 12345                               # above pid_max: never running
    state_path(props).write_text(json.dumps(doc))
    assert read_states(props)["alive"] is False
    state_path(props).write_text("{not json")
    assert read_states(props) is None                        # a damaged report is no report


def test_no_path_writes_nothing(tmp_path):
    states = FlowStates(None)
    states.set("A->B", "running")
    states.stepped("A->B")
    assert list(tmp_path.iterdir()) == []
