"""The App without a broker (rillet/streams/app.py, topics.py): internal topic planning and
co-partitioning checks, interactive-query views, config changes before run, the CLI's
loading of ``module:app``."""

from __future__ import annotations

import pytest

from rillet.records import TopicPartition
from rillet.streams import App, serdes
from rillet.streams.errors import CopartitionError, MissingSourceTopicError, StreamsError
from rillet.streams.topics import plan_internal_topics
from rillet.streams.topology import Topology

B = {"bootstrap.servers": "127.0.0.1:9092"}


def _wordcount() -> Topology:
    t = Topology()
    (t.stream("text", value_serde=serdes.String).flat_map_values(str.split)
     .group_by(lambda _k, w: w, key_serde=serdes.String).count(store="counts")
     .to_stream().to("out"))
    return t


def test_internal_topics_take_their_partition_counts_from_the_inputs() -> None:
    plan = plan_internal_topics(_wordcount().compile(), "wc", {"text": 3})
    assert plan["wc-counts-repartition"][0] == 3
    n, configs = plan["wc-counts-changelog"]
    assert n == 3 and configs["cleanup.policy"] == "compact"


def test_a_missing_source_topic_is_named() -> None:
    with pytest.raises(MissingSourceTopicError, match="text .*does not exist"):
        plan_internal_topics(_wordcount().compile(), "wc", {})


def test_inputs_of_one_task_must_be_co_partitioned() -> None:
    t = Topology()
    clicks = t.stream("clicks")
    clicks.merge(t.stream("users")).to("both")  # one sub-topology reads both
    compiled = t.compile()
    plan_internal_topics(compiled, "j", {"clicks": 4, "users": 4})  # fine
    with pytest.raises(CopartitionError, match=r"clicks \(4 partitions\), users \(2"):
        plan_internal_topics(compiled, "j", {"clicks": 4, "users": 2})


def test_declared_co_partition_groups_are_checked_and_fix_repartition_counts() -> None:
    t = Topology()
    a = t.stream("a").select_key(lambda k, v: v).repartition("rekeyed")
    b = t.stream("b")
    t.copartition(a._node, b._node)  # as a join does
    a.merge(b).to("out")
    compiled = t.compile()
    plan = plan_internal_topics(compiled, "g", {"a": 2, "b": 5})
    assert plan["g-rekeyed-repartition"][0] == 5  # the group's count, not its writer's
    t2 = Topology()
    x, y = t2.stream("x"), t2.stream("y")
    t2.copartition(x._node, y._node)
    with pytest.raises(CopartitionError, match="join"):
        plan_internal_topics(t2.compile(), "g", {"x": 1, "y": 3})


def test_store_views_and_config_changes_before_run() -> None:
    app = App("wc", B)
    (app.stream("text", value_serde=serdes.String).flat_map_values(str.split)
     .group_by(lambda _k, w: w, key_serde=serdes.String).count(store="counts"))
    with pytest.raises(KeyError, match="stores: counts"):
        app.store("nope")
    view = app.store("counts")
    assert view.get("x") is None and len(view) == 0 and view.all() == []  # no task yet
    with pytest.raises(AttributeError, match="read-only"):
        view.put("x", 1)
    app.update_config({"processing.guarantee": "exactly_once", "state.dir": "/tmp/x"})
    assert app.config.exactly_once and app.config.state_dir == "/tmp/x"
    assert app.config.bootstrap_servers == ["127.0.0.1:9092"]  # kept
    with pytest.raises(StreamsError, match="cannot change"):
        app.update_config({"default.key.serde": "string"})
    app.close()
    assert app.state == "NOT_RUNNING"
    with pytest.raises(StreamsError, match="state NOT_RUNNING"):
        app.run()


def test_cli_loads_an_app_from_a_file_or_a_module(tmp_path, monkeypatch) -> None:
    import click

    from rillet.cli.streams import load_app

    (tmp_path / "myapp.py").write_text(
        "from rillet.streams import App\n"
        "app = App('x', {'bootstrap.servers': 'h:1'})\n"
        "app.stream('a').to('b')\n"
        "other = 5\n")
    assert load_app(f"{tmp_path / 'myapp.py'}:app").application_id == "x"
    monkeypatch.chdir(tmp_path)
    assert load_app("myapp").application_id == "x"  # attribute default: app
    with pytest.raises(click.BadParameter, match="not a rillet.streams.App"):
        load_app("myapp:other")
    with pytest.raises(click.BadParameter, match="cannot import"):
        load_app("no_such_module_here:app")


def test_key_metadata_from_the_instances_view() -> None:
    """metadata.py over a hand-made view (what the instances topic would hold): the key's
    partition is the producer's murmur2 partition, its active host the instance holding
    the counting task, the standby hosts those with a standby of it."""
    from rillet._partitioner import partition_for_key
    from rillet.streams.api import TaskId
    from rillet.streams.instances import HostInfo, InstanceInfo

    app = App("md", {"bootstrap.servers": "127.0.0.1:1", "application.server": "me:1"})
    (app.stream("lines", value_serde=serdes.String).flat_map_values(str.split)
     .group_by(lambda _k, w: w, key_serde=serdes.String).count(store="counts"))
    with pytest.raises(StreamsError, match="once the app runs"):
        app.query_metadata_for_key("counts", "x")
    app._compiled = app.topology.compile()
    app._partition_counts = {"lines": 4, "md-counts-repartition": 4}
    with pytest.raises(KeyError, match="no store 'nope'"):
        app.query_metadata_for_key("nope", "x")

    class Runtime:  # what metadata.py reads of a running app
        standbys = type("S", (), {"tasks": {}})()

    app._runtime = Runtime()  # type: ignore[assignment]
    p = partition_for_key(b"fox", 4)
    app._directory.apply("other", InstanceInfo(HostInfo("o", 2), frozenset({TaskId(1, p)}),
                                               frozenset()), 1e12)
    app._directory.apply("third", InstanceInfo(HostInfo("t", 3), frozenset(),
                                               frozenset({TaskId(1, p)})), 1e12)
    md = app.query_metadata_for_key("counts", "fox")
    assert (md.partition, md.active_host, md.standby_hosts) == (
        p, HostInfo("o", 2), frozenset({HostInfo("t", 3)}))
    # a newer claim (the task's new owner) wins over an older one (a killed instance's)
    app._directory.apply("new", InstanceInfo(HostInfo("n", 4), frozenset({TaskId(1, p)}),
                                             frozenset()), 2e12)
    assert app.query_metadata_for_key("counts", "fox").active_host == HostInfo("n", 4)
    app.tasks[TaskId(1, p)] = None  # type: ignore[assignment]  # now this one holds it
    assert app.query_metadata_for_key("counts", "fox").active_host == HostInfo("me", 1)
    metas = {m.instance_id: m for m in app.all_metadata_for_store("counts")}
    assert set(metas) == {app.instance_id, "other", "third", "new"}
    assert metas["third"].standby_state_store_names == {"counts"}
    assert metas["third"].standby_topic_partitions == {
        TopicPartition("md-counts-repartition", p)}
