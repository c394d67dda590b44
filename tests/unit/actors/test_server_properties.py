"""server.properties: Java's file format and Kafka's key names (actors/server_properties.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rillet.actors.server_properties import (
    ServerPropertiesError,
    load_server_properties,
    parse_properties,
    settings_from_properties,
)

BASE = {"node.id": "1", "log.dirs": "/data/r1", "listeners": "CLIENT://127.0.0.1:9092"}


def test_java_properties_comments_separators_escapes_and_continuations() -> None:
    text = (
        "# a comment\n"
        "  ! another comment\n"
        "\n"
        "a=1\n"
        "b : two words \n"
        "c   3\n"
        "d=x\\\n"
        "     y\\\n"
        "\tz\n"
        "e\\=key=v\\=al\\tue\n"
        "f=caf\\u00e9\n"
        "g=ends with a backslash\\\\\n"
        "h=\n"
        "a=last wins\n"
    )
    assert parse_properties(text) == {
        "a": "last wins", "b": "two words ", "c": "3", "d": "xyz", "e=key": "v=al\tue",
        "f": "café", "g": "ends with a backslash\\", "h": "",
    }


def test_a_bad_unicode_escape_names_its_line() -> None:
    with pytest.raises(ValueError, match="line 2: bad unicode escape"):
        parse_properties("a=1\nb=\\uZZZZ\n")


def test_identity_keys_map_onto_the_broker() -> None:
    s = settings_from_properties({**BASE, "listeners": "CLIENT://:9092,BROKER://10.0.0.1:9093",
                                  "advertised.listeners": "CLIENT://db1:9092",
                                  "num.partitions": "3"})
    assert (s.node_id, s.data_dir, s.listen, s.internal_listen) == (
        1, Path("/data/r1"), ":9092", "10.0.0.1:9093")
    assert s.configs["num.partitions"] == "3"


@pytest.mark.parametrize(("given", "ms"), [
    ({"log.retention.hours": "2"}, str(2 * 3_600_000)),
    ({"log.retention.hours": "2", "log.retention.minutes": "3"}, str(3 * 60_000)),
    ({"log.retention.hours": "2", "log.retention.minutes": "3", "log.retention.ms": "7"}, "7"),
    ({"log.retention.hours": "-1"}, "-1"),
])
def test_retention_units_follow_kafkas_precedence(given, ms) -> None:
    assert settings_from_properties({**BASE, **given}).configs["log.retention.ms"] == ms


def test_roll_hours_map_to_roll_ms() -> None:
    assert settings_from_properties({**BASE, "log.roll.hours": "1"}).configs["log.roll.ms"] == \
        "3600000"


def test_broker_id_is_node_ids_synonym_and_must_agree() -> None:
    base = {k: v for k, v in BASE.items() if k != "node.id"}
    assert settings_from_properties({**base, "broker.id": "4"}).node_id == 4
    with pytest.raises(ServerPropertiesError, match="differ"):
        settings_from_properties({**base, "broker.id": "4", "node.id": "5"})


def _problems(props) -> list[str]:
    with pytest.raises(ServerPropertiesError) as e:
        settings_from_properties(props)
    return e.value.problems


def test_every_wrong_entry_gets_its_own_line() -> None:
    problems = _problems({"node.id": "x", "log.dirs": "/a,/b", "listeners": "BROKER://h:1",
                          "log.retension.hours": "1", "zookeeper.connect": "zk:2181"})
    assert len(problems) == 5, problems
    assert "node.id='x' is not an integer" in problems
    assert any("give exactly one directory" in p for p in problems)
    assert any("must name a CLIENT listener" in p for p in problems)
    assert "unknown broker config 'log.retension.hours'; did you mean 'log.retention.hours'?" \
        in problems
    assert any(p.startswith("zookeeper.connect: not used by rillet") for p in problems)


def test_values_of_broker_configs_are_checked() -> None:
    assert _problems({**BASE, "num.io.threads": "many"}) == [
        "num.io.threads='many' is not an integer"]


def test_process_roles_must_match_the_voters() -> None:
    voters = {"controller.quorum.voters": "1@h1:9093,2@h2:9093,3@h3:9093"}
    assert settings_from_properties({**BASE, **voters, "process.roles": "broker,controller"})
    assert "is not in controller.quorum.voters" in _problems(
        {**BASE, **voters, "node.id": "4", "process.roles": "controller,broker"})[0]
    assert "add controller to process.roles" in _problems(
        {**BASE, **voters, "process.roles": "broker"})[0]
    assert "no controller-only node" in _problems({**BASE, "process.roles": "controller"})[0]
    assert "valid values" in _problems({**BASE, "process.roles": "borker"})[0]


def test_a_wildcard_bind_needs_an_advertised_address() -> None:
    assert "binds the wildcard host" in _problems({**BASE, "listeners": "CLIENT://0.0.0.0:9092"})[0]


def test_load_reads_the_file_and_overrides_win(tmp_path: Path) -> None:
    f = tmp_path / "server.properties"
    f.write_text("node.id=1\nlog.dirs=/d\nlisteners=CLIENT://127.0.0.1:9092\nnum.partitions=2\n")
    s = load_server_properties(f, {"num.partitions": "6", "node.id": "2"})
    assert (s.node_id, s.configs["num.partitions"]) == (2, "6")
    with pytest.raises(ServerPropertiesError, match="cannot read"):
        load_server_properties(tmp_path / "missing.properties")
