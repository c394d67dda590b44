"""The mirror's read-only Connect REST view (connectors/mirror/rest_view.py) over a real HTTP
server on a free port: Connect's paths and shapes, the flow's state from the state file,
405 for every change."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from rillet.connectors.mirror.policy import MirrorConfigError, parse_mirror_config
from rillet.connectors.mirror.rest_view import serve
from rillet.connectors.mirror.state import FlowStates, state_path

PROPS = {"clusters": "A, B", "A.bootstrap.servers": "h:1", "B.bootstrap.servers": "h:2",
         "A->B.enabled": "true", "A->B.topics": "orders.*", "listeners": "http://127.0.0.1:0"}


def _call(url: str, method: str = "GET", body: object = None) -> tuple[int, object]:
    data = json.dumps(body if body is not None else {}).encode() if method != "GET" else None
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture
def view(tmp_path, monkeypatch):
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path / "cfg"))
    props = tmp_path / "mm2.properties"
    props.write_text("")
    config = parse_mirror_config(PROPS)
    server = serve(config, props, config.listeners)
    try:
        yield server.url, FlowStates(state_path(props), props)
    finally:
        server.stop()


def test_flows_listed_as_mm2_connectors_with_the_flows_state(view):
    url, states = view
    names = ["A->B.MirrorCheckpointConnector", "A->B.MirrorHeartbeatConnector",
             "A->B.MirrorSourceConnector"]
    assert _call(f"{url}/connectors") == (200, names)
    # no state written yet: the task is not assigned
    assert _call(f"{url}/connectors/A->B.MirrorSourceConnector/status")[1]["tasks"][0][
        "state"] == "UNASSIGNED"
    states.set("A->B", "running")
    code, body = _call(f"{url}/connectors?expand=status")
    assert code == 200 and {n: b["status"]["tasks"][0]["state"] for n, b in body.items()} == {
        n: "RUNNING" for n in names}
    states.set("A->B", "retrying", "NoBrokersAvailableError: B away", retry_in_s=1)
    code, task = _call(f"{url}/connectors/A->B.MirrorSourceConnector/tasks/0/status")
    assert code == 200 and task["state"] == "RESTARTING"
    assert task["trace"] == "NoBrokersAvailableError: B away"
    code, info = _call(f"{url}/connectors/A->B.MirrorSourceConnector")
    assert code == 200 and info["type"] == "source" and info["config"]["topics"] == "orders.*"
    assert info["config"]["connector.class"] == (
        "org.apache.kafka.connect.mirror.MirrorSourceConnector")


def test_the_view_is_read_only_and_unknown_names_are_404(view):
    url, _ = view
    assert _call(f"{url}/connectors/nope/status")[0] == 404
    assert _call(f"{url}/connectors/A->B.MirrorSourceConnector/tasks/1/status")[0] == 404
    src = "/connectors/A->B.MirrorSourceConnector"
    for method, path in (("POST", "/connectors"), ("DELETE", src), ("PUT", f"{src}/pause"),
                         ("PUT", f"{src}/config"), ("POST", f"{src}/restart"),
                         ("GET", f"{src}/offsets")):
        code, body = _call(url + path, method, {"name": "x", "config": {}})
        assert code == 405 and "read-only" in body["message"], (method, path)


@pytest.mark.parametrize("value", ["127.0.0.1:8083", "https://h:1", "http://h", "http://h:x"])
def test_a_bad_listener_is_refused(value):
    with pytest.raises(MirrorConfigError, match="listeners must be http://HOST:PORT"):
        parse_mirror_config({**PROPS, "listeners": value})
    with pytest.raises(MirrorConfigError, match="unknown key"):
        parse_mirror_config({**PROPS, "A->B.listeners": "http://h:1"})
