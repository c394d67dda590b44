"""Two instances of one streams app (tests/integration/streams_app.py, run through
``rillet streams run``), one killed with SIGKILL while input keeps arriving: its tasks move
to the other, which restores their stores from the changelogs and goes on. With a standby
replica the other already has the state: nothing is replayed.

* exactly_once: for every word the committed output is exactly 1, 2, ..., n (no count
  skipped, none repeated: the aborted transaction of the dead instance left nothing), so the
  final counts equal the truth. (The record cache is off for this check: with it each
  commit carries only a word's latest count.)
* at_least_once: no final count is below the truth; the excess is bounded by what the dead
  instance processed after its last commit (docs/streams.md "Processing guarantees"), so
  every count is at most truth + the records of one commit interval.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from rillet.streams import serdes
from tests.support import wait_until

APP = Path(__file__).with_name("streams_app.py")
PARTITIONS = 4
WORDS = [f"w{i:02d}" for i in range(12)]
GROUP_CONFIGS = {
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.heartbeat.interval.ms": "500",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
}


class Instance:
    """One ``rillet streams run`` process; its log tells which tasks it holds."""

    def __init__(self, name: str, bootstrap: str, tmp: Path, guarantee: str,
                 *extra: str, target: str = "app") -> None:
        self.log = tmp / f"{name}.log"
        args = [sys.executable, "-m", "rillet.cli.main", "streams", "run", f"{APP}:{target}",
                "-c", f"bootstrap.servers={bootstrap}", "-c", f"state.dir={tmp / name}",
                "-c", f"processing.guarantee={guarantee}", "-c", "commit.interval.ms=500"]
        if guarantee == "exactly_once":
            args += ["-c", "statestore.cache.max.bytes=0"]
        for item in extra:
            args += ["-c", item]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         env={**os.environ, "RILLET_DEBUG": "1"})

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tasks(self) -> set[str]:
        held: set[str] = set()
        for m in re.finditer(r"task (\d+_\d+) (created|closed)", self.text()):
            (held.add if m.group(2) == "created" else held.discard)(m.group(1))
        return held

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _feed(bootstrap: str, lines: list[str], produced: list[int], stop: threading.Event):
    with Producer({"bootstrap.servers": bootstrap, "linger.ms": 5}) as producer:
        for i in range(0, len(lines), 40):
            if stop.is_set():
                return
            for j, line in enumerate(lines[i:i + 40], start=i):
                producer.send("lines", line.encode(), key=str(j).encode())
            producer.flush(30)
            produced[0] = min(len(lines), i + 40)
            time.sleep(0.05)  # the input keeps arriving over a few seconds


def _lso(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """What read_committed readers can see of ``tps`` (their last stable offsets)."""
    with Consumer({"bootstrap.servers": bootstrap,
                   "isolation.level": "read_committed"}) as consumer:
        return consumer.end_offsets(tps)


def _outputs(bootstrap: str, read_committed: bool,
             partitions: int = PARTITIONS) -> dict[str, list[int]]:
    tps = [TopicPartition("word-counts", p) for p in range(partitions)]
    out: dict[str, list[int]] = collections.defaultdict(list)
    cfg = {"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"}
    if read_committed:
        cfg["isolation.level"] = "read_committed"
    with Consumer(cfg) as consumer:
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "word-counts not read to its end"
            for records in consumer.poll(200).values():
                for r in records:
                    out[r.key.decode()].append(serdes.Long.deserialize("x", r.value))
    return out


@pytest.mark.timeout(400)
@pytest.mark.parametrize("guarantee", [
    "exactly_once", pytest.param("at_least_once", marks=pytest.mark.slow)])
def test_one_of_two_instances_killed_mid_stream(cluster_factory, tmp_path, guarantee):
    cluster = cluster_factory(1, GROUP_CONFIGS)
    b = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": b}) as admin:
        admin.create_topics([NewTopic("lines", PARTITIONS), NewTopic("word-counts",
                                                                        PARTITIONS)])
    lines = [" ".join(WORDS[(i * k + k) % len(WORDS)] for k in (1, 3, 5))
             for i in range(600)]
    truth = collections.Counter(w for line in lines for w in line.split())
    a = Instance("a", b, tmp_path, guarantee)
    other = Instance("b", b, tmp_path, guarantee)
    stop, produced = threading.Event(), [0]
    feeder = threading.Thread(target=_feed, args=(b, lines, produced, stop), daemon=True)
    try:
        wait_until(lambda: a.tasks() and other.tasks(), 180,
                   "both instances to hold tasks")
        feeder.start()
        wait_until(lambda: produced[0] >= len(lines) // 3, 120, "a third of the input")
        held = a.tasks()
        assert held, "the victim holds no task"
        # kill it once it has committed counts (then the survivor must restore them): task
        # 1_p writes output partition p (the words were repartitioned by the same hash)
        mine = [TopicPartition("word-counts", int(t.split("_")[1])) for t in held
                if t.startswith("1_")]
        assert mine, held
        wait_until(lambda: any(_lso(b, mine).values()), 60, "the victim's first commit")
        a.stop(signal.SIGKILL)
        # its tasks move to the survivor, which restores their state and goes on
        wait_until(lambda: held <= other.tasks(), 90,
                   f"tasks {sorted(held)} to move (log:\n{other.text()[-3000:]})")
        feeder.join(180)
        assert produced[0] == len(lines)
        eos = guarantee == "exactly_once"

        def done() -> bool:
            latest = {w: vs[-1] for w, vs in _outputs(b, eos).items()}
            return all(latest.get(w, 0) >= n for w, n in truth.items())

        wait_until(done, 180, "every word's count to reach its true value")
        assert other.stop() == 0, other.text()[-3000:]
    finally:
        stop.set()
        a.stop(signal.SIGKILL)
        other.stop(signal.SIGKILL)
    outputs = _outputs(b, eos)
    final = {w: vs[-1] for w, vs in outputs.items()}
    if eos:
        for w, n in truth.items():
            assert outputs[w] == list(range(1, n + 1)), (w, outputs[w])
        assert final == dict(truth)
    else:
        # the bound: one crash replays the dead instance's uncommitted work once, so a
        # record is counted at most twice
        for w, n in truth.items():
            assert n <= final[w] <= 2 * n, (w, final[w], n)
    # the moved tasks' stores came back from their changelogs
    restored = [int(n) for n in re.findall(r"restored (\d+) records", other.text())]
    assert sum(restored) > 0, other.text()[-3000:]


def _restored_by_task(text: str) -> dict[str, int]:
    """The changelog records each task restored when last created (runtime.py's log)."""
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r"task (\d+_\d+) created \((\d+) changelog records restored\)", text)}


@pytest.mark.slow  # ~15 s; test_streams.py's in-process standby test is in the default suite
@pytest.mark.timeout(300)
@pytest.mark.parametrize("target", ["app", "memory_app"])
def test_a_standby_replica_takes_over_after_a_kill_without_replaying(cluster_factory,
                                                                       tmp_path, target):
    """num.standby.replicas=1: the survivor keeps a warm copy of the victim's count stores
    (read from their changelogs; SQLite files, or stores in memory), so when the victim is
    killed -9 and its tasks move, the survivor replays no changelog record; the counts then
    go on from the right values."""
    cluster = cluster_factory(1, {**GROUP_CONFIGS, "group.consumer.session.timeout.ms": "3000",
                                  "group.consumer.heartbeat.interval.ms": "300"})
    b = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": b}) as admin:
        admin.create_topics([NewTopic("lines", 2), NewTopic("word-counts", 2)])
    lines = [" ".join(WORDS[(i * k + k) % len(WORDS)] for k in (1, 3, 5)) for i in range(200)]
    extra = ("num.standby.replicas=1", "statestore.cache.max.bytes=0",
             "commit.interval.ms=200")
    a = Instance("a", b, tmp_path, "at_least_once", *extra, target=target)
    other = Instance("b", b, tmp_path, "at_least_once", *extra, target=target)
    try:
        wait_until(lambda: len(a.tasks()) == 2 and len(other.tasks()) == 2, 180,
                   "the instances to share the tasks")
        with Producer({"bootstrap.servers": b, "linger.ms": 5}) as producer:
            for i, line in enumerate(lines[:100]):
                producer.send("lines", line.encode(), key=str(i).encode())
        truth = collections.Counter(w for line in lines[:100] for w in line.split())

        def counted(truth: collections.Counter) -> bool:
            latest = {w: vs[-1] for w, vs in _outputs(b, False, 2).items()}
            return all(latest.get(w) == n for w, n in truth.items())

        wait_until(lambda: counted(truth), 120, "the first counts")
        # and committed (at_least_once: what was not would be counted again after the kill)
        inputs = [TopicPartition(t, p) for t in ("lines", "streams-it-counts-repartition")
                  for p in range(2)]
        with Consumer({"bootstrap.servers": b, "group.id": "streams-it"}) as consumer:
            ends = consumer.end_offsets(inputs)
            wait_until(lambda: consumer.committed(inputs) == ends, 60,
                       f"the input offsets committed to {ends}")
        moved = {t for t in a.tasks() if t.startswith("1_")}
        changelog = [TopicPartition("streams-it-counts-changelog", int(t[2:])) for t in moved]
        with Consumer({"bootstrap.servers": b}) as consumer:
            logged = sum(consumer.end_offsets(changelog).values())
        assert moved and logged >= 100, (moved, logged)  # a full replay would be this
        assert "standby 1_" in other.text(), other.text()[-3000:]
        a.stop(signal.SIGKILL)
        wait_until(lambda: moved <= other.tasks(), 90,
                   f"tasks {sorted(moved)} to move (log:\n{other.text()[-3000:]})")
        restored = _restored_by_task(other.text())
        assert {t: restored[t] for t in moved} == {t: 0 for t in moved}, other.text()[-3000:]
        # and the counts carry on from the standby's state
        with Producer({"bootstrap.servers": b, "linger.ms": 5}) as producer:
            for i, line in enumerate(lines[100:], start=100):
                producer.send("lines", line.encode(), key=str(i).encode())
        truth = collections.Counter(w for line in lines for w in line.split())
        wait_until(lambda: counted(truth), 120, "the final counts")
        assert other.stop() == 0, other.text()[-3000:]
    finally:
        a.stop(signal.SIGKILL)
        other.stop(signal.SIGKILL)
