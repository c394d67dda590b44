"""Config files, typed keys and did-you-mean validation."""

from __future__ import annotations

import json

import pytest
from rillet.connectors.api import SinkConnector, SinkTask, SourceConnector, SourceTask
from rillet.connectors.config import (
    ConfigDef,
    key,
    load_config_file,
    parse_properties,
    parse_worker_config,
)
from rillet.connectors.errors import ConnectConfigError, PluginNotFoundError
from rillet.connectors.plugins import load_connector_class
from rillet.connectors.validation import validate_connector_config


class EchoSource(SourceConnector):
    config_def = ConfigDef([key("topic"), key("batch.size", "int", 10)])

    def task_class(self):
        return SourceTask


class LooseSink(SinkConnector):  # no config_def: its own keys are not checked
    def task_class(self):
        return SinkTask


SRC = f"{__name__}:EchoSource"


def test_properties_parsing_follows_java_rules():
    text = "# comment\n! also\nname = a\nconnector.class: x\nlong=one,\\\n   two\nempty\n"
    assert parse_properties(text) == {"name": "a", "connector.class": "x", "long": "one,two",
                                      "empty": ""}


def test_three_file_formats_give_the_same_flat_dict(tmp_path):
    want = {"name": "s", "connector.class": SRC, "tasks.max": "1",
            "transforms.a.type": "Filter"}
    (tmp_path / "c.properties").write_text("\n".join(f"{k}={v}" for k, v in want.items()))
    (tmp_path / "c.json").write_text(json.dumps({"name": "s", "config": {
        k: v for k, v in want.items() if k != "name"}}))
    (tmp_path / "c.toml").write_text(
        f'name = "s"\n"connector.class" = "{SRC}"\n"tasks.max" = "1"\n'
        '[transforms.a]\ntype = "Filter"\n')
    for f in ("c.properties", "c.json", "c.toml"):
        assert load_config_file(tmp_path / f) == want, f


def test_unreadable_and_unparsable_files_raise_typed_errors(tmp_path):
    with pytest.raises(ConnectConfigError, match="cannot read"):
        load_config_file(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ConnectConfigError, match="cannot parse"):
        load_config_file(tmp_path / "bad.json")


def test_worker_config_defaults_types_and_hints(monkeypatch, tmp_path):
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))  # no profile to fall back on
    w = parse_worker_config({"bootstrap.servers": "127.0.0.1:1", "rest.port": "0",
                             "plugin.path": "/x", "producer.linger.ms": "5"})
    assert w["rest.port"] == 0 and w["offset.storage.topic"] == "connect-offsets"
    assert w["producer.linger.ms"] == "5"
    with pytest.raises(ConnectConfigError) as e:
        parse_worker_config({"bootstrap.server": "x", "rest.port": "abc"})
    msg = str(e.value)
    assert "unknown key 'bootstrap.server' (did you mean 'bootstrap.servers'?)" in msg
    assert "missing required key 'bootstrap.servers'" in msg
    assert "rest.port: expected an integer" in msg


def test_connector_validation_collects_every_problem():
    with pytest.raises(ConnectConfigError) as e:
        validate_connector_config({"name": "s", "connector.class": SRC, "tasks.mx": "2",
                                   "batch.size": "many", "errors.tolerance": "some",
                                   "transforms": "r", "transforms.r.type": "Nope"})
    p = "\n".join(e.value.problems)
    assert "did you mean 'tasks.max'" in p
    assert "batch.size: expected an integer" in p
    assert "errors.tolerance: 'some' is not one of none, all" in p
    assert "transforms.r" in p and "Nope" in p
    assert "missing required key 'topic'" in p


def test_connector_spec_is_typed_and_knows_its_kind():
    spec = validate_connector_config({"name": "s", "connector.class": SRC, "topic": "t",
                                      "tasks.max": "3"})
    assert spec.config["tasks.max"] == 3 and spec.config["batch.size"] == 10
    assert spec.type == "source" and spec.connector_class is EchoSource
    sink = validate_connector_config({"name": "k", "connector.class": f"{__name__}.LooseSink",
                                      "topics": "a,b", "whatever.key": "ok"})
    assert sink.is_sink and sink.config["topics"] == ["a", "b"]
    with pytest.raises(ConnectConfigError, match="needs 'topics'"):
        validate_connector_config({"name": "k", "connector.class": f"{__name__}:LooseSink"})


def test_plugin_loading_errors_are_clear():
    with pytest.raises(PluginNotFoundError, match="not a known name"):
        load_connector_class("file-sauce")
    with pytest.raises(PluginNotFoundError, match="cannot import"):
        load_connector_class("no_such_module_xyz:Foo")
    with pytest.raises(PluginNotFoundError, match="not a SourceConnector"):
        load_connector_class("json:JSONDecoder")


def test_bootstrap_servers_default_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))  # no profile
    monkeypatch.setenv("RILLET_BROKERS", "127.0.0.1:5")
    assert parse_worker_config({})["bootstrap.servers"] == "127.0.0.1:5"
    assert parse_worker_config({"bootstrap.servers": "h:1"})["bootstrap.servers"] == "h:1"
    monkeypatch.delenv("RILLET_BROKERS")
    with pytest.raises(ConnectConfigError, match="RILLET_BROKERS"):
        parse_worker_config({})
    (tmp_path / "profile.json").write_text('{"brokers": "127.0.0.1:6"}')
    assert parse_worker_config({})["bootstrap.servers"] == "127.0.0.1:6"


def test_plugin_path_and_the_working_directory_make_custom_connectors_importable(
        tmp_path, monkeypatch):
    """`rillet connect standalone` (a console script: the working directory is not on
    sys.path) finds `module:Class` plugins in plugin.path and in the working directory."""
    import sys

    from rillet.connectors.plugins import load_connector_class
    from rillet.connectors.standalone import add_plugin_paths

    plugins, cwd = tmp_path / "plugins", tmp_path / "cwd"
    plugins.mkdir(), cwd.mkdir()
    body = ("from rillet.connectors.api import SourceConnector\n"
            "class {name}(SourceConnector):\n    pass\n")
    (plugins / "inplugins.py").write_text(body.format(name="A"))
    (cwd / "incwd.py").write_text(body.format(name="B"))
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(cwd))])
    with pytest.raises(Exception, match="cannot import incwd"):
        load_connector_class("incwd:B")
    assert add_plugin_paths([str(plugins)]) == []
    assert load_connector_class("inplugins:A").__name__ == "A"
    assert load_connector_class("incwd:B").__name__ == "B"
    assert add_plugin_paths([str(tmp_path / "nope")]) == [
        f"plugin.path: {str(tmp_path / 'nope')!r} is not a directory"]
    w = parse_worker_config({"bootstrap.servers": "h:1", "plugin.path": f"{plugins},/x"})
    assert w["plugin.path"] == [str(plugins), "/x"]
