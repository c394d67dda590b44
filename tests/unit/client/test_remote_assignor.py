"""``group.remote.assignor`` (KIP-848's consumer key): the member asks the coordinator for an
assignor in its heartbeat. Checked against the REAL pure coordinator core behind the fake
broker of test_membership: with "range", partition p of two equally partitioned topics
lands on one member (what a streams task needs); the member's choice is what the group
records; a bad name is refused up front."""

from __future__ import annotations

import pytest

from rillet.config import consumer_config
from rillet.errors import ConfigError
from rillet.records import TopicPartition
from tests.unit.client.test_membership import _consumer, _poll_until, gbroker  # noqa: F401


def _by_topic(tps: set[TopicPartition]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for tp in tps:
        out.setdefault(tp.topic, set()).add(tp.partition)
    return out


@pytest.mark.timeout(30)
def test_range_assignor_keeps_co_partitioned_topics_together(gbroker) -> None:  # noqa: F811
    gbroker.create("a", 3)
    gbroker.create("b", 3)
    c1 = _consumer(gbroker, **{"group.remote.assignor": "range", "client.id": "one"})
    c2 = _consumer(gbroker, **{"group.remote.assignor": "range", "client.id": "two"})
    try:
        c1.subscribe(["a", "b"])
        c2.subscribe(["a", "b"])
        _poll_until([c1, c2], lambda: len(c1.assignment()) + len(c2.assignment()) == 6
                    and c1.assignment() and c2.assignment())
        with gbroker.group_lock:
            group = gbroker.state.groups["g"]
            assert {m.server_assignor for m in group.members.values()} == {"range"}
        assert gbroker.core.assignor_for(group.members.values()) == "range"
        for c in (c1, c2):
            layout = _by_topic(c.assignment())
            assert layout["a"] == layout["b"], layout
    finally:
        c1.close()
        c2.close()


@pytest.mark.timeout(30)
def test_without_the_key_the_group_default_applies(gbroker) -> None:  # noqa: F811
    gbroker.create("a", 2)
    c1 = _consumer(gbroker)
    try:
        c1.subscribe(["a"])
        _poll_until([c1], lambda: len(c1.assignment()) == 2)
        with gbroker.group_lock:
            group = gbroker.state.groups["g"]
            assert {m.server_assignor for m in group.members.values()} == {None}
        assert gbroker.core.assignor_for(group.members.values()) == "uniform"
    finally:
        c1.close()


def test_unknown_assignor_is_refused() -> None:
    with pytest.raises(ConfigError, match="uniform, range"):
        consumer_config({"bootstrap.servers": "h:1", "group.remote.assignor": "sticky"})
    assert consumer_config({"bootstrap.servers": "h:1",
                            "group.remote.assignor": "RANGE"}).group_remote_assignor == "range"
