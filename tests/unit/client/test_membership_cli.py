"""Parsing helpers of ``rillet group reset-offsets`` and the group CLI's usage errors."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from rillet.cli.group import _parse_topic, parse_datetime_ms, parse_duration_ms
from rillet.cli.main import cli


@pytest.mark.parametrize(("text", "ms"), [
    ("PT1H", 3_600_000), ("P1D", 86_400_000), ("PT1H30M", 5_400_000), ("pt10s", 10_000),
    ("P1DT2H3M4.5S", ((26 * 60 + 3) * 60 + 4.5) * 1000), ("-PT5M", 300_000),
])
def test_durations(text, ms) -> None:
    assert parse_duration_ms(text) == int(ms)


@pytest.mark.parametrize("text", ["", "P", "PT", "1H", "PT1X", "P1H"])
def test_bad_durations(text) -> None:
    with pytest.raises(click.BadParameter):
        parse_duration_ms(text)


def test_datetimes_are_utc_unless_a_zone_is_given() -> None:
    assert parse_datetime_ms("1970-01-01T00:00:01") == 1000
    assert parse_datetime_ms("1970-01-01T00:00:01.250Z") == 1250
    assert parse_datetime_ms("1970-01-01T01:00:00+01:00") == 0
    with pytest.raises(click.BadParameter):
        parse_datetime_ms("yesterday")


def test_topic_specs() -> None:
    assert _parse_topic("orders") == ("orders", None)
    assert _parse_topic("orders:0,2") == ("orders", [0, 2])
    with pytest.raises(click.BadParameter):
        _parse_topic("orders:x")


@pytest.mark.parametrize("args", [
    ["group", "reset-offsets", "--group", "g", "--topic", "t"],  # no strategy
    ["group", "reset-offsets", "--group", "g", "--topic", "t", "--to-earliest", "--to-latest"],
    ["group", "reset-offsets", "--group", "g", "--to-earliest"],  # no topic
])
def test_reset_offsets_usage_errors(args) -> None:
    result = CliRunner().invoke(cli, [*args, "-b", "127.0.0.1:1"])
    assert result.exit_code == 2, result.output


def test_group_commands_are_registered() -> None:
    result = CliRunner().invoke(cli, ["group", "--help"])
    assert result.exit_code == 0
    for command in ("list", "describe", "reset-offsets", "delete"):
        assert command in result.output
