"""run_standalone in-process (fake cluster): config files, the printed port, clean stop."""

from __future__ import annotations

import io
import threading

import pytest
from rillet.connectors.errors import ConnectConfigError
from rillet.connectors.standalone import load_all, run_standalone

from .conftest import wait_until

pytestmark = pytest.mark.timeout(30)


def write_configs(tmp_path):
    (tmp_path / "worker.properties").write_text(
        "bootstrap.servers=fake:1\nrest.port=0\noffset.flush.interval.ms=50\n"
        "key.converter=org.apache.kafka.connect.json.JsonConverter\n"
        "offset.storage.file.filename=/tmp/ignored\n")
    (tmp_path / "source.properties").write_text(
        f"name=src\nconnector.class=FileStreamSource\nfile={tmp_path / 'in.txt'}\n"
        "topic=lines\npoll.interval.ms=20\nvalue.converter=string\n")
    (tmp_path / "sink.toml").write_text(
        f'name = "sink"\n"connector.class" = "file-sink"\nfile = "{tmp_path / "out.txt"}"\n'
        'topics = "lines"\n"value.converter" = "string"\n')


def test_standalone_runs_file_to_topic_to_file(tmp_path, cluster):
    write_configs(tmp_path)
    (tmp_path / "in.txt").write_text("hello\nworld\n")
    out = io.StringIO()
    stop = threading.Event()
    t = threading.Thread(target=run_standalone, args=(
        str(tmp_path / "worker.properties"),
        [str(tmp_path / "source.properties"), str(tmp_path / "sink.toml")],
        cluster.clients(), stop, out))
    t.start()
    try:
        wait_until(lambda: (tmp_path / "out.txt").exists()
                   and (tmp_path / "out.txt").read_text() == "hello\nworld\n")
        assert "REST API listening on http://127.0.0.1:" in out.getvalue()
        assert "connector src started (source, tasks.max=1)" in out.getvalue()
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive() and out.getvalue().endswith("worker stopped\n")
    assert cluster.open_clients == cluster.closed_clients


def test_every_config_problem_is_reported_before_starting(tmp_path):
    write_configs(tmp_path)
    (tmp_path / "bad.json").write_text('{"name": "src", "connector.class": "file-sink"}')
    with pytest.raises(ConnectConfigError) as e:
        load_all(tmp_path / "worker.properties",
                 [tmp_path / "source.properties", tmp_path / "bad.json",
                  tmp_path / "source.properties"])
    msg = str(e.value)
    assert "needs 'topics'" in msg and "used twice" in msg and "missing required key 'file'" in msg


def test_the_cli_exits_2_with_every_problem_listed(tmp_path):
    from click.testing import CliRunner

    from rillet.cli.connect import connect

    write_configs(tmp_path)
    (tmp_path / "bad.properties").write_text("name=x\nconnector.class=file-source\nfile=f\n"
                                             "topic=t\nbatch.sise=5\n")
    res = CliRunner().invoke(connect, ["standalone", str(tmp_path / "worker.properties"),
                                       str(tmp_path / "bad.properties")])
    assert res.exit_code == 2
    assert "unknown key 'batch.sise' (did you mean 'batch.size'?)" in res.output
