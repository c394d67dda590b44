"""The mirror through failures (issue #17, docs/mirror.md): exactly-once through kill -9,
offset syncs read back after a restart, a topic deleted on the source, the target cluster
going away mid-run. One pair of real one-broker clusters serves the module (each test uses
its own topics); `rillet mirror start` runs as its own process, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from rillet.connectors.mirror.remote import _read_all, translate_offsets

from rillet import Admin, Consumer, Producer
from rillet.records import TopicPartition
from tests.integration.mirror_helpers import (  # noqa: F401 - *_fixture are fixtures
    _count,
    _create,
    _produce,
    _props,
    mirrors_fixture,
    pair_fixture,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

EOS_PARTITIONS = 3


class Ends:
    """Log end and last stable offset of a topic's partitions, from two long-lived consumers
    (cheap enough to poll while the mirror runs)."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        base = {"bootstrap.servers": bootstrap, "enable.auto.commit": "false"}
        self.raw = Consumer({**base, "isolation.level": "read_uncommitted"})
        self.committed = Consumer({**base, "isolation.level": "read_committed"})

    def new_open_transaction(self, stable_after: int) -> int | None:
        """The sum of the last stable offsets, when it passed ``stable_after`` (so the
        transaction a previous kill left open has ended: the new mirror's init_transactions
        aborted it) and records of a transaction not ended yet are in the log (the new
        mirror's, open right now); else None."""
        try:
            hw, lso = self.raw.end_offsets(self.tps), self.committed.end_offsets(self.tps)
        except Exception:  # noqa: BLE001 - metadata not there yet: ask again
            return None
        stable = sum(lso.values())
        if stable > stable_after and any(hw[tp] > lso[tp] for tp in self.tps):
            return stable
        return None

    def log_end(self) -> list[int]:
        hw = self.raw.end_offsets(self.tps)
        return [hw[tp] for tp in self.tps]

    def close(self) -> None:
        self.raw.close()
        self.committed.close()


class Feeder:
    """Writes the test's records to A in _produce's shapes (value v<i>, key, header, time);
    ``next`` is the index of the next record. Used by one thread at a time."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic, self.next = topic, 0
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})

    def produce(self, n: int) -> None:
        for i in range(self.next, self.next + n):
            self.producer.send(self.topic, f"v{i}".encode(), f"k{i % 50}".encode(),
                               headers=[("seq", str(i).encode())],
                               timestamp_ms=1_700_000_000_000 + i)
        self.producer.flush()
        self.next += n

    def close(self) -> None:
        self.producer.close()


def _kill_inside_transaction(m, ends: Ends, feeder: Feeder, stable_after: int,
                             timeout_s: float = 90) -> int:
    """SIGKILL the mirror while a transaction of its own is open on B. A transaction lasts
    a few ms, so each time B's log grows the mirror is frozen (SIGSTOP) and B looked at: a
    transaction open then is still open when the kill lands. Meanwhile A gets 100 more
    records every 20 ms, so the mirror never runs out of transactions to be caught in.
    Returns the sum of B's last stable offsets at the kill."""
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            feeder.produce(100)
            stop.wait(0.02)  # the pace of the load, not a synchronisation

    feeding = threading.Thread(target=feed, daemon=True)
    feeding.start()
    try:
        deadline = time.monotonic() + timeout_s
        last = ends.log_end()
        while time.monotonic() < deadline:
            now = ends.log_end()
            if now == last:
                continue
            os.kill(m.proc.pid, signal.SIGSTOP)
            stable = ends.new_open_transaction(stable_after)
            if stable is not None:
                m.kill9()
                return stable
            os.kill(m.proc.pid, signal.SIGCONT)
            last = now
        raise AssertionError(f"no open transaction of the mirror seen in {timeout_s} s")
    finally:
        stop.set()
        feeding.join(timeout=30)


def _by_partition(records) -> dict[int, list]:
    out: dict[int, list] = defaultdict(list)
    for r in records:
        out[r.partition].append((r.key, r.value, r.headers, r.timestamp))
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("n", [12_000, pytest.param(100_000, marks=[
    pytest.mark.slow, pytest.mark.timeout(900)])])
def test_exactly_once_through_three_kill9(pair, tmp_path: Path, mirrors, n: int):
    """Each kill lands while a transaction of the mirror is open on B; a read_committed
    consumer of B still sees every record of A exactly once, in A's order per partition.
    (Run with exactly.once.support=disabled it fails: the copies of the poll in flight at
    a kill appear twice.)"""
    a, b = pair
    topic = f"eos-orders-{n}"
    _create(a.bootstrap_servers, topic, partitions=EOS_PARTITIONS)
    props = _props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                   **{"A->B.topics": topic, "exactly.once.support": "enabled"})
    feeder = Feeder(a.bootstrap_servers, topic)
    feeder.produce(100)
    m = mirrors(props)
    wait_until(lambda: _count(b.bootstrap_servers, f"A.{topic}") >= 100, 60, "the first copies")
    ends = Ends(b.bootstrap_servers, f"A.{topic}", EOS_PARTITIONS)
    try:
        stable = -1
        for _ in range(3):  # each chunk waits in A for the (restarted) mirror: work to kill
            feeder.produce(n // 4)
            stable = _kill_inside_transaction(m, ends, feeder, stable)
            m = mirrors(props)
        n = feeder.next
    finally:
        ends.close()
        feeder.close()

    def committed_count() -> int:
        return len(_read_all(b.bootstrap_servers, f"A.{topic}", 120, "read_committed"))

    wait_until(lambda: committed_count() >= n, 120 + n / 500, "every record committed on B",
               interval_s=0.5)
    source = _by_partition(_read_all(a.bootstrap_servers, topic, 120))
    copied = _by_partition(_read_all(b.bootstrap_servers, f"A.{topic}", 120, "read_committed"))
    for p in range(EOS_PARTITIONS):
        assert copied[p] == source[p], f"partition {p}: not exactly A's records in order"
    # the kills left aborted copies in B's log: a read_uncommitted reader sees duplicates,
    # so the exactly-once above is the transactions' doing, not a lucky schedule
    raw = len(_read_all(b.bootstrap_servers, f"A.{topic}", 120))
    assert raw > n
    status = subprocess.run([sys.executable, "-m", "rillet.cli.main", "mirror", "status",
                             str(props)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines() if line.startswith(topic)]
    assert sorted(int(r[3]) for r in rows) == [0] * EOS_PARTITIONS, status.stdout


FILLER = 300


def test_group_committed_before_a_restart_translates_after_it(pair, tmp_path: Path, mirrors):
    """The offset syncs are read back from A when the mirror starts: a group that committed
    on A while the mirror was down is checkpointed though no record moves after the
    restart (no new sync), and resumes on B at its copy of record 1000."""
    a, b = pair
    topic, group = "ledger", "ledger-billing"
    _create(a.bootstrap_servers, topic, partitions=1)
    _produce(a.bootstrap_servers, topic, 2000)
    # B's copy starts FILLER records later than A's log: translation is not the identity
    _create(b.bootstrap_servers, f"A.{topic}", partitions=1)
    _produce(b.bootstrap_servers, f"A.{topic}", FILLER, start=10_000)
    props = _props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                   **{"A->B.topics": topic, "A->B.groups": group})
    m = mirrors(props)
    # the mirror commits its progress after the syncs are written: once it covers the
    # topic, every sync is on A and nothing will be copied twice after the kill
    source_tp = TopicPartition(topic, 0)
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        wait_until(lambda: admin.list_consumer_group_offsets("mm2-A->B", [source_tp]).get(
            source_tp) == 2000, 60, "the mirror's progress to cover the topic")
    m.kill9()
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        admin.alter_consumer_group_offsets(group, {source_tp: 1000})
    mirrors(props)
    remote = TopicPartition(f"A.{topic}", 0)
    offset = wait_until(lambda: translate_offsets(b.bootstrap_servers, "A", group).get(remote),
                        60, "a checkpoint of the group on B after the restart")
    # at or just before the copy of record 1000: reprocesses at most offset.lag.max (100)
    assert FILLER + 900 <= offset <= FILLER + 1000
    rest = [r.value for r in _read_all(b.bootstrap_servers, f"A.{topic}")[offset:]]
    first = 1000 - (FILLER + 1000 - offset)
    assert rest == [f"v{i}".encode() for i in range(first, 2000)]


def test_topic_deleted_on_source_is_kept_on_target_and_shown_orphaned(pair, tmp_path: Path,
                                                                      mirrors):
    """Kafka's MM2 never deletes a remote topic: the copy stays on B, `mirror status` lists
    it as orphaned, and the mirror goes on with the other topics."""
    a, b = pair
    for t in ("del-gone", "del-kept"):
        _create(a.bootstrap_servers, t, partitions=1)
        _produce(a.bootstrap_servers, t, 100)
    props = _props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                   **{"A->B.topics": "del-.*"})
    m = mirrors(props)
    wait_until(lambda: _count(b.bootstrap_servers, "A.del-gone") == 100
               and _count(b.bootstrap_servers, "A.del-kept") == 100, 60, "both copies on B")
    with Admin({"bootstrap.servers": a.bootstrap_servers}) as admin:
        admin.delete_topics(["del-gone"])
        wait_until(lambda: "del-gone" not in admin.list_topics(), 30, "the deletion on A")
    _produce(a.bootstrap_servers, "del-kept", 100, start=100)
    wait_until(lambda: _count(b.bootstrap_servers, "A.del-kept") == 200, 60,
               "the other topic mirrored on after the deletion")
    wait_until(lambda: "del-gone was deleted on A" in m.log.read_text(errors="replace"), 30,
               "the mirror to notice the deletion")
    assert m.proc.poll() is None
    assert _count(b.bootstrap_servers, "A.del-gone") == 100
    out = _status(props)
    assert "orphaned: A.del-gone" in out and "orphaned: A.del-kept" not in out, out
    assert "retrying" not in out, out


def _status(props: Path) -> str:
    res = subprocess.run([sys.executable, "-m", "rillet.cli.main", "mirror", "status",
                          str(props)], capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _status_with(props: Path, text: str) -> str | None:
    out = _status(props)
    return out if text in out else None


@pytest.mark.slow  # ~45 s: the clients wait request.timeout.ms (30 s) before they give up
@pytest.mark.timeout(300)
def test_target_down_mid_run_flow_retries_then_loses_nothing(pair, tmp_path: Path, mirrors):
    """B's brokers are stopped (`rillet cluster down`) while the mirror runs: `mirror status`
    shows the flow retrying; B comes back and every record arrives, exactly once. Last in
    the module: it stops the shared target cluster (and starts it again)."""
    a, b = pair
    topic, half = "outage-orders", 1500
    _create(a.bootstrap_servers, topic, partitions=1)
    _produce(a.bootstrap_servers, topic, half)
    props = _props(tmp_path, a.bootstrap_servers, b.bootstrap_servers,
                   **{"A->B.topics": topic, "exactly.once.support": "enabled"})
    m = mirrors(props)
    wait_until(lambda: _count(b.bootstrap_servers, f"A.{topic}") >= half, 60, "the first half")
    down = subprocess.run([sys.executable, "-m", "rillet.cli.main", "cluster", "down",
                           "--data-dir", str(b.data_dir)], capture_output=True, text=True,
                          timeout=60)
    assert down.returncode == 0, down.stderr
    _produce(a.bootstrap_servers, topic, half, start=half)
    out = wait_until(lambda: _status_with(props, "flow A->B: retrying"), 120,
                     "status to show the flow retrying")
    assert "B unreachable" in out and "mirror process: pid" in out, out
    assert m.proc.poll() is None
    b.start(timeout_s=60)
    want = [f"v{i}".encode() for i in range(2 * half)]
    wait_until(lambda: [r.value for r in _read_all(b.bootstrap_servers, f"A.{topic}", 30,
                                                   "read_committed")] == want, 120,
               "every record exactly once on B after it came back")
    wait_until(lambda: _status_with(props, "flow A->B: running"), 60,
               "status to show the flow running again")
