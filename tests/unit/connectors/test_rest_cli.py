"""The REST API and the `rillet connect` commands, against a worker on the fake cluster."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from rillet.connectors.rest import RestServer

from rillet.cli.connect import connect

from .conftest import wait_until

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def rest(worker):
    server = RestServer(worker, "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()


def call(rest, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(rest.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def source_body(path):
    return {"name": "src", "config": {"connector.class": "file-source", "file": str(path),
                                      "topic": "lines", "poll.interval.ms": "20"}}


def test_rest_lifecycle(tmp_path, cluster, rest):
    f = tmp_path / "in.txt"
    f.write_text('"a"\n')
    assert call(rest, "GET", "/")[1]["version"]
    assert call(rest, "GET", "/connectors") == (200, [])
    status, info = call(rest, "POST", "/connectors", source_body(f))
    assert status == 201 and info["type"] == "source" and info["config"]["topic"] == "lines"
    assert call(rest, "POST", "/connectors", source_body(f))[0] == 409
    wait_until(lambda: len(cluster.records("lines")) == 1)
    status, st = call(rest, "GET", "/connectors/src/status")
    assert st["connector"]["state"] == "RUNNING" and st["tasks"][0]["state"] == "RUNNING"
    assert call(rest, "GET", "/connectors/src/tasks/0/status")[1]["state"] == "RUNNING"
    assert call(rest, "GET", "/connectors?expand=status")[1]["src"]["status"]["type"] == "source"
    assert call(rest, "PATCH", "/connectors/src/offsets", {"offsets": []})[0] == 409
    assert call(rest, "PUT", "/connectors/src/pause")[0] == 202
    assert call(rest, "GET", "/connectors/src/status")[1]["tasks"][0]["state"] == "PAUSED"
    assert call(rest, "PUT", "/connectors/src/stop")[0] == 202
    status, offs = call(rest, "GET", "/connectors/src/offsets")
    assert offs["offsets"][0]["offset"]["position"] == 4
    assert call(rest, "PATCH", "/connectors/src/offsets",
                {"offsets": [{"partition": {"filename": str(f)},
                              "offset": {"position": 0}}]})[0] == 200
    assert call(rest, "PUT", "/connectors/src/resume")[0] == 202
    wait_until(lambda: len(cluster.records("lines")) == 2, what="re-read after PATCH")
    assert call(rest, "POST", "/connectors/src/restart")[0] == 202
    assert call(rest, "POST", "/connectors/src/tasks/0/restart")[0] == 204
    assert call(rest, "POST", "/connectors/src/tasks/9/restart")[0] == 404
    assert call(rest, "DELETE", "/connectors/src")[0] == 204
    assert call(rest, "GET", "/connectors/src/status")[0] == 404


def test_rest_errors_are_json_with_codes(rest):
    code, body = call(rest, "POST", "/connectors", {"name": "x", "config": {
        "connector.class": "file-source", "file": "f", "topik": "t"}})
    assert code == 400 and body["error_code"] == 400 and "did you mean 'topic'" in body["message"]
    assert call(rest, "GET", "/nope")[0] == 404
    assert call(rest, "GET", "/connectors/ghost")[1]["error_code"] == 404
    assert call(rest, "POST", "/connectors", {"bad": 1})[0] == 400
    req = urllib.request.Request(rest.url + "/connectors", data=b"{nope", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400


def test_put_config_creates_then_replaces(tmp_path, rest, cluster):
    f = tmp_path / "in.txt"
    f.write_text("x\n")
    cfg = source_body(f)["config"]
    assert call(rest, "PUT", "/connectors/src/config", cfg)[0] == 201
    assert call(rest, "PUT", "/connectors/src/config", {**cfg, "topic": "other"})[0] == 200
    assert call(rest, "GET", "/connectors/src/config")[1]["topic"] == "other"
    with open(f, "a") as fh:  # offsets belong to the name: the new config resumes after x
        fh.write("y\n")
    wait_until(lambda: [r.value for r in cluster.records("other")] == [b'"y"'])


def test_cli_commands_talk_to_the_rest_port(tmp_path, cluster, rest, worker):
    f = tmp_path / "in.txt"
    f.write_text("a\n")
    worker.add_connector({**source_body(f)["config"], "name": "src"})
    runner = CliRunner()

    def run(*args):
        res = runner.invoke(connect, [*args, "--url", rest.url])
        return res.exit_code, res.output

    code, out = run("list")
    assert code == 0 and out.startswith("src\tsource\tRUNNING\ttasks [0:RUNNING]")
    code, out = run("status", "src")
    assert code == 0 and json.loads(out)["connector"]["state"] == "RUNNING"
    assert run("pause", "src") == (0, "pause: src\n")
    assert json.loads(run("status", "src")[1])["tasks"][0]["state"] == "PAUSED"
    assert run("resume", "src")[0] == 0
    assert run("restart", "src", "--include-tasks", "--only-failed")[0] == 0
    wait_until(lambda: len(cluster.records("lines")) == 1)
    assert run("stop", "src")[0] == 0
    assert json.loads(run("offsets", "src")[1])["offsets"][0]["offset"]["position"] == 2
    assert run("delete", "src") == (0, "delete: src\n")
    code, out = run("status", "src")
    assert code == 1 and "404" in out and "not found" in out
    res = runner.invoke(connect, ["list", "--url", "http://127.0.0.1:9"])
    assert res.exit_code == 1 and "cannot reach the worker" in res.output
