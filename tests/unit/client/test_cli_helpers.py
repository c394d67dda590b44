"""The CLI's pure parts: broker resolution, k=v parsing, the console formatter."""

from __future__ import annotations

import click
import pytest

from rillet.cli import common
from rillet.cli.console import _formatter
from rillet.records import ConsumerRecord


def test_brokers_come_from_flag_then_env_then_profile(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RILLET_CONFIG_DIR", str(tmp_path))
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    with pytest.raises(click.UsageError, match="rillet cluster up"):
        common.resolve_brokers(None)
    common.write_profile({"brokers": "127.0.0.1:3", "data_dir": str(tmp_path / "d")})
    assert common.resolve_brokers(None) == "127.0.0.1:3"
    monkeypatch.setenv("RILLET_BROKERS", "127.0.0.1:2")
    assert common.resolve_brokers(None) == "127.0.0.1:2"
    assert common.resolve_brokers("127.0.0.1:1") == "127.0.0.1:1"
    common.remove_profile_for(tmp_path / "other")
    assert common.read_profile()
    common.remove_profile_for(tmp_path / "d")
    assert common.read_profile() == {}


def test_parse_kv_and_unescape() -> None:
    assert common.parse_kv(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(click.BadParameter, match="'nope' is not key=value"):
        common.parse_kv(["nope"])
    assert common.unescape("\\t") == "\t" and common.unescape(":") == ":"


REC = ConsumerRecord("t", 2, 7, 1234, b"k", b"v", (("h1", b"a"), ("h2", None)))


def test_formatter_default_is_the_value() -> None:
    assert _formatter("text", {})(REC) == b"v\n"
    assert _formatter("text", {})(REC._replace(value=None)) == b"null\n"


def test_formatter_kafka_field_order() -> None:
    props = {f"print.{k}": "true" for k in ("timestamp", "partition", "offset", "headers",
                                           "key")}
    line = _formatter("text", props)(REC)
    assert line == b"CreateTime:1234\tPartition:2\tOffset:7\th1:a,h2:null\tk\tv\n"
    assert _formatter("text", {"print.key": "true", "key.separator": ":"})(REC) == b"k:v\n"
    no_headers = _formatter("text", {"print.headers": "true"})(REC._replace(headers=()))
    assert no_headers == b"NO_HEADERS\tv\n"


def test_formatter_json() -> None:
    line = _formatter("json", {})(REC._replace(value=b"\xff"))
    assert line.startswith(b'{"topic": "t", "partition": 2, "offset": 7, "timestamp": 1234')
    assert b'"value": {"base64": "/w=="}' in line and b'"headers": [["h1", "a"], ["h2", null]]' in line
