"""rillet.streams against a real broker (docs/streams.md "Running"), in-process apps:
word count end to end with an interactive query, restart restoring state (from the changelog,
and from the local SQLite file without a full replay), bad records per the deserialization
handler, and the start-up checks (a missing source topic); the sinks' batched writes
(``rillet._send_many``: order, batches, transactions). The kill -9 of one of two
instances is in test_streams_failover.py."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet._send_many import send_many
from rillet.errors import UnknownTopicOrPartitionError
from rillet.streams import App, serdes
from rillet.streams.dsl import Materialized
from rillet.streams.errors import DeserializationError, MissingSourceTopicError
from rillet.streams.task import DLQ_HEADERS
from tests.support import wait_until

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]


@pytest.fixture
def cluster(shared_cluster):
    return shared_cluster


def _topics(bootstrap: str, *names: str, partitions: int = 2) -> None:
    with Admin({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(n, partitions) for n in names])


def _lines(n: int, start: int = 0) -> list[str]:
    return [" ".join(WORDS[(i * k) % len(WORDS)] for k in (1, 2, 3)) for i in
            range(start, start + n)]


def _produce(bootstrap: str, topic: str, values: list, keys: bool = True) -> None:
    with Producer({"bootstrap.servers": bootstrap, "linger.ms": 5}) as producer:
        for i, v in enumerate(values):
            producer.send(topic, v if isinstance(v, bytes) else v.encode(),
                          key=str(i).encode() if keys else None)
        producer.flush(30)


def _wordcount(app_id: str, bootstrap: str, state_dir: Path, src: str, out: str,
               in_memory: bool = False, **config) -> App:
    app = App(app_id, {"bootstrap.servers": bootstrap, "state.dir": str(state_dir),
                       "commit.interval.ms": 200, **config})
    (app.stream(src, value_serde=serdes.String)
     .flat_map_values(str.split)
     .group_by(lambda _k, word: word, key_serde=serdes.String)
     .count(store=Materialized("counts", in_memory=True) if in_memory else "counts")
     .to_stream()
     .to(out, key_serde=serdes.String, value_serde=serdes.Long))
    return app


def _truth(lines: list[str]) -> dict[str, int]:
    return dict(collections.Counter(w for line in lines for w in line.split()))


def _read_all(bootstrap: str, topic: str, partitions: int = 2, **cfg) -> list:
    """Every record of ``topic``, read up to its end (the LSO under read_committed)."""
    out: list = []
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                   **cfg}) as consumer:
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, f"{topic} not read to its end {ends}"
            for records in consumer.poll(200).values():
                out.extend(records)
    return out


def _latest(bootstrap: str, topic: str, partitions: int = 2, **cfg) -> dict[str, int]:
    """The last value per key (word -> count)."""
    return {r.key.decode(): serdes.Long.deserialize(topic, r.value)
            for r in _read_all(bootstrap, topic, partitions, **cfg)}


def _wait_counts(app: App, truth: dict[str, int], timeout_s: float = 90) -> None:
    view = app.store("counts")
    wait_until(lambda: app.error is not None or all(view.get(w) == n
                                                    for w, n in truth.items()),
               timeout_s, f"the counts to reach the truth ({app.state}, {app.metrics()})")
    assert app.error is None, app.error


@pytest.mark.timeout(180)
def test_the_record_cache_sends_a_words_latest_count_per_commit(cluster, tmp_path) -> None:
    """statestore.cache.max.bytes (on by default): the store and the interactive query see
    every update at once; the output and changelog get each word's latest count per commit
    (far fewer records than updates), increasing, ending at the truth. Off (0): every
    update is sent."""
    b = cluster.bootstrap_servers
    lines = _lines(600)
    truth = _truth(lines)
    sent = {}
    for cache in ("10485760", "0"):
        src, out = f"wc-cache-lines-{cache}", f"wc-cache-counts-{cache}"
        _topics(b, src, out)
        _produce(b, src, lines)
        app = _wordcount(f"wc-cache-{cache}", b, tmp_path / cache, src, out,
                         **{"statestore.cache.max.bytes": cache, "commit.interval.ms": 1000})
        app.start()
        try:
            _wait_counts(app, truth)
        finally:
            app.close(30)
        assert app.error is None
        records = _read_all(b, out)
        per_word = collections.defaultdict(list)
        for r in records:
            per_word[r.key.decode()].append(serdes.Long.deserialize(out, r.value))
        for word, counts in per_word.items():
            assert counts == sorted(set(counts)), (word, counts)  # increasing, no repeats
            assert counts[-1] == truth[word]
        sent[cache] = len(records)
    assert sent["0"] == sum(truth.values())  # every update
    assert sent["10485760"] < sum(truth.values()) // 10, sent  # the latest per commit


@pytest.mark.timeout(180)
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_word_count_end_to_end(cluster, tmp_path, guarantee) -> None:
    b = cluster.bootstrap_servers
    src, out = f"wc-lines-{guarantee}", f"wc-counts-{guarantee}"
    _topics(b, src, out)
    lines = _lines(300)
    _produce(b, src, lines)
    app = _wordcount(f"wc-{guarantee.replace('_', '-')}", b, tmp_path / "state", src, out,
                     **{"processing.guarantee": guarantee})
    app.start()
    try:
        _wait_counts(app, _truth(lines))
        # the interactive query sees every task's store of this instance
        view = app.store("counts")
        assert sorted(view.all()) == sorted(_truth(lines).items())
        assert len(view) == len(_truth(lines))
        with pytest.raises(AttributeError, match="read-only"):
            view.put  # noqa: B018
        with pytest.raises(KeyError, match="no store 'nope'"):
            app.store("nope")
        m = app.metrics()
        assert m["tasks"] == 4 and m["processed"] >= len(lines)  # 2 sub-topologies x 2
    finally:
        app.close(30)
    assert app.state == "NOT_RUNNING" and app.error is None
    # the output topic's last value per word is the count (read_committed under EOS)
    iso = {"isolation.level": "read_committed"} if guarantee == "exactly_once" else {}
    assert _latest(b, out, **iso) == _truth(lines)
    # the internal topics are there, named as Kafka's
    with Admin({"bootstrap.servers": b}) as admin:
        names = set(admin.list_topics())
    app_id = app.application_id
    assert {f"{app_id}-counts-changelog", f"{app_id}-counts-repartition"} <= names


@pytest.mark.timeout(240)
def test_restart_restores_from_the_changelog_and_from_the_local_file(cluster, tmp_path):
    b = cluster.bootstrap_servers
    src, out = "rs-lines", "rs-counts"
    _topics(b, src, out)
    first = _lines(200)
    _produce(b, src, first)
    app = _wordcount("restore-app", b, tmp_path / "a", src, out)
    app.start()
    try:
        _wait_counts(app, _truth(first))
    finally:
        app.close(30)
    assert app.metrics()["restored"] == 0
    # the same state.dir: the SQLite files hold the counts up to their checkpoint, so
    # nothing (or only what came after the last commit) is replayed
    more = _lines(50, start=200)
    _produce(b, src, more)
    app = _wordcount("restore-app", b, tmp_path / "a", src, out)
    app.start()
    try:
        _wait_counts(app, _truth(first + more))
        local_restored = app.metrics()["restored"]
    finally:
        app.close(30)
    assert local_restored == 0
    # a fresh state.dir (another machine): everything comes back from the changelog
    app = _wordcount("restore-app", b, tmp_path / "b", src, out)
    app.start()
    try:
        _wait_counts(app, _truth(first + more))
        restored = app.metrics()["restored"]
    finally:
        app.close(30)
    changelog = _latest(b, "restore-app-counts-changelog")
    assert changelog == _truth(first + more)  # compacted view of what was logged
    assert restored >= len(_truth(first + more))  # every word at least once


@pytest.mark.timeout(180)
def test_bad_records_go_to_the_deserialization_handler(cluster, tmp_path) -> None:
    b = cluster.bootstrap_servers
    _topics(b, "bad-in", partitions=1)
    good = [serdes.Long.serialize("t", i) for i in range(10)]
    values = good[:4] + [b"\x01\x02\x03"] + good[4:]  # not 8 bytes: Long cannot decode it
    _produce(b, "bad-in", values, keys=False)

    def doubler(handler: str, **extra) -> App:
        out = f"bad-out-{handler}"
        _topics(b, out, partitions=1)
        app = App(f"bad-{handler.replace('_', '-')}", {
            "bootstrap.servers": b, "state.dir": str(tmp_path / handler),
            "default.deserialization.exception.handler": handler, **extra})
        (app.stream("bad-in", value_serde=serdes.Long).map_values(lambda v: v * 2)
         .to(out, value_serde=serdes.Long))
        return app

    def outputs(handler: str) -> list[int]:
        return [serdes.Long.deserialize("t", r.value)
                for r in _read_all(b, f"bad-out-{handler}", 1)]

    # log_and_continue: skipped and counted, the rest processed
    app = doubler("log_and_continue")
    app.start()
    try:
        wait_until(lambda: app.metrics()["processed"] == 10 or app.error, 60, "10 records")
        assert app.metrics()["skipped"] == 1
    finally:
        app.close(30)
    assert outputs("log_and_continue") == [2 * i for i in range(10)]

    # dead_letter: the raw record with KIP-1034's headers in the DLQ topic
    app = doubler("dead_letter", **{"errors.dead.letter.queue.topic.name": "bad-dlq"})
    app.start()
    try:
        wait_until(lambda: app.metrics()["processed"] == 10 or app.error, 60, "10 records")
        assert app.metrics()["dead_lettered"] == 1
    finally:
        app.close(30)
    dead = _read_all(b, "bad-dlq", 1)
    assert [r.value for r in dead] == [b"\x01\x02\x03"]
    headers = dict(dead[0].headers)
    assert set(DLQ_HEADERS) <= set(headers)
    assert headers["__streams.errors.topic"] == b"bad-in"
    assert headers["__streams.errors.offset"] == b"4"

    # log_and_fail (the default): run() stops with the error; the records before it went
    # through, the bad one is not committed past (a restart fails on it again)
    app = doubler("log_and_fail")
    app.start()
    wait_until(lambda: app.state == "ERROR", 60, "the app to fail")
    assert isinstance(app.error, DeserializationError)
    assert (app.error.topic, app.error.partition, app.error.offset) == ("bad-in", 0, 4)
    assert outputs("log_and_fail") == [0, 2, 4, 6]
    with Consumer({"bootstrap.servers": b, "group.id": "bad-log-and-fail"}) as c:
        committed = c.committed([("bad-in", 0)])
    assert list(committed.values())[0] in (None, 4)


@pytest.mark.timeout(60)
def test_a_missing_source_topic_stops_the_app_with_a_clear_error(cluster, tmp_path) -> None:
    app = App("missing-src", {"bootstrap.servers": cluster.bootstrap_servers,
                              "state.dir": str(tmp_path)})
    app.stream("no-such-topic").to("nowhere")
    with pytest.raises(MissingSourceTopicError, match="no-such-topic .* does not exist"):
        app.run()
    assert app.state == "ERROR"




def _changelog_ends(bootstrap: str, topic: str, partitions: int = 2) -> dict[int, int]:
    with Consumer({"bootstrap.servers": bootstrap}) as consumer:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    return {tp.partition: n for tp, n in ends.items()}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("guarantee, in_memory", [
    ("at_least_once", False), ("at_least_once", True),
    pytest.param("exactly_once", False, marks=pytest.mark.slow)])
def test_standby_replicas_and_interactive_queries_across_two_instances(cluster, tmp_path,
                                                                      guarantee, in_memory):
    """num.standby.replicas=1, two instances with an application.server each: each keeps a
    warm copy of the other's count stores (read from their changelogs; SQLite, or in
    memory); the metadata tells which instance holds each word (and which has a standby),
    and asking that one's store gives the true count; when one closes, the other takes its
    tasks over with the state already there: no changelog record replayed."""
    b = cluster.bootstrap_servers
    kind = f"{guarantee}-mem" if in_memory else guarantee
    src, out = f"sb-lines-{kind}", f"sb-counts-{kind}"
    app_id = f"standby-{kind.replace('_', '-')}"
    _topics(b, src, out)
    lines = _lines(300)
    truth = _truth(lines)
    servers = {"a": "host-a:7001", "b": "host-b:7002"}
    # every update changelogged (no record cache): a full replay would be hundreds
    apps = {name: _wordcount(app_id, b, tmp_path / name, src, out, in_memory, **{
        "num.standby.replicas": 1, "application.server": server,
        "statestore.cache.max.bytes": 0, "processing.guarantee": guarantee})
        for name, server in servers.items()}
    a, other = apps["a"], apps["b"]
    changelog = f"{app_id}-counts-changelog"  # its end: past the markers under EOS
    try:
        a.start()
        wait_until(lambda: a.error or a.metrics()["tasks"] == 4, 60, "a to hold every task")
        other.start()
        wait_until(lambda: a.error or other.error or (
            a.metrics()["tasks"] == 2 and other.metrics()["tasks"] == 2), 90,
            "the tasks to be shared")
        _produce(b, src, lines)
        by_server = {servers[n]: app for n, app in apps.items()}

        def answered() -> bool:  # each word asked of the instance the metadata names
            for word, n in truth.items():
                md = a.query_metadata_for_key("counts", word)
                if md != other.query_metadata_for_key("counts", word):
                    return False
                host = by_server.get(str(md.active_host))
                if host is None or host.store("counts").get(word) != n:
                    return False
            return True

        wait_until(lambda: a.error or other.error or answered(), 90,
                   "every word's count from the instance holding it")

        def standbys_published() -> bool:
            # each instance works out and publishes its standbys from the instances topic
            # every PUBLISH_S (streams/instances.py): they follow the active tasks' entries
            md = a.query_metadata_for_key("counts", "alpha")
            return {str(h) for h in md.standby_hosts} == set(servers.values()) - {
                str(md.active_host)} and all(
                "counts" in m.standby_state_store_names
                for m in a.all_metadata_for_store("counts"))

        wait_until(lambda: a.error or other.error or standbys_published(), 30,
                   "each instance's standby to be published")
        assert not a.error and not other.error
        md = a.query_metadata_for_key("counts", "alpha")
        assert {str(h) for h in md.standby_hosts} == set(servers.values()) - {
            str(md.active_host)}
        metas = a.all_metadata_for_store("counts")
        assert sorted(str(m.host_info) for m in metas) == sorted(servers.values())
        for m in metas:  # each holds one counting task and a standby of the other's
            assert "counts" in m.state_store_names and "counts" in m.standby_state_store_names
        # the standbys have read the changelogs to their ends
        mine = {t.partition for t in a.tasks if t.subtopology == 1}
        ends = _changelog_ends(b, changelog)

        def caught_up() -> bool:
            standbys = other._runtime.standbys.tasks
            return all(any(task.positions.get(TopicPartition(changelog, p)) == ends[p]
                           for task in list(standbys.values())) for p in mine)

        wait_until(caught_up, 60, f"b's standbys to reach {ends}")
        assert other.metrics()["standby_records"] > 0
        restored_before = other.metrics()["restored"]
        a.close(30)
        assert a.error is None
        wait_until(lambda: other.error or other.metrics()["tasks"] == 4, 90,
                   "b to take a's tasks over")
        # a's counting tasks came from b's standbys: nothing replayed from the changelog
        assert other.metrics()["restored"] - restored_before == 0
        view = other.store("counts")
        assert {w: view.get(w) for w in truth} == truth
        wait_until(lambda: other.query_metadata_for_key("counts", "alpha").active_host
                   is not None and str(other.query_metadata_for_key(
                       "counts", "alpha").active_host) == servers["b"], 30,
                   "the metadata to name b alone")
        assert [str(m.host_info) for m in other.all_metadata()] == [servers["b"]]
    finally:
        for app in apps.values():
            app.close(30)
    assert a.error is None and other.error is None


# -- rillet._send_many: the sinks' batched writes (here to share this module's broker) ----

def _read_tp(bootstrap: str, tp: TopicPartition, n: int, **config) -> list:
    out: list = []
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
                   **config}) as c:
        c.assign([tp])
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for records in c.poll(200).values():
                out.extend(records)
    return out


def test_send_many_keeps_order_and_splits_batches(cluster) -> None:
    b = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": b}) as admin:
        admin.create_topics([NewTopic("many", 2)])
    keys = [f"k{i}".encode() for i in range(300)]
    values = [b"v" * 40 + str(i).encode() for i in range(300)]
    timestamps = [1_700_000_000_000 + i for i in range(300)]
    headers = [(("n", str(i).encode()),) if i % 3 == 0 else () for i in range(300)]
    with Producer({"bootstrap.servers": b, "batch.size": 4096, "linger.ms": 5}) as p:
        with pytest.raises(UnknownTopicOrPartitionError):
            send_many(p, "many", 2, keys[:1], values[:1], timestamps[:1])
        futures = send_many(p, "many", 1, keys, values, timestamps, headers)
        p.flush(30)
        assert len(futures) > 2  # closed at batch.size, as send() would
        metas = [f.get(30) for f in futures]
    assert metas[-1].offset == 299 and all(m.partition == 1 for m in metas)
    got = _read_tp(b, TopicPartition("many", 1), 300)
    assert [(r.key, r.value, r.timestamp) for r in got] == list(zip(keys, values, timestamps,
                                                                     strict=True))
    assert [tuple(r.headers or ()) for r in got] == [tuple(h) for h in headers]


def test_send_many_belongs_to_the_transaction(cluster) -> None:
    b = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": b}) as admin:
        admin.create_topics([NewTopic("many-txn", 1)])
    tp = TopicPartition("many-txn", 0)
    with Producer({"bootstrap.servers": b, "transactional.id": "many-txn"}) as p:
        p.init_transactions()
        p.begin_transaction()
        send_many(p, "many-txn", 0, [b"a"] * 3, [b"aborted"] * 3, [1, 2, 3])
        p.abort_transaction()
        p.begin_transaction()
        send_many(p, "many-txn", 0, [b"b"] * 2, [b"x", b"y"], [4, 5])
        p.commit_transaction()
    got = _read_tp(b, tp, 2, **{"isolation.level": "read_committed"})
    assert [r.value for r in got] == [b"x", b"y"]
