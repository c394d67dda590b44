"""Exactly-once through kill -9 (issue #14): examples/eos/app.py reads ``eos-in``, writes
``eos-out`` and commits its input offsets in the same transaction. Input keeps arriving while
the app (which works 150 ms between writing a transaction's records and committing it, so
most kills leave an open transaction behind) is killed with SIGKILL and restarted (and, in the full schedule, while the leader of
an output partition and the transaction coordinator's broker are killed and restarted); when
the input is drained, a read_committed consumer of ``eos-out`` holds exactly one result per
input record, in input order per key.

The full schedule (5 app kills + 2 broker kills on 3 brokers, RF 3) is ``slow``; the default
suite runs a short one (2 app kills, one broker)."""

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
from rillet.transport import protocol as P

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from tests.support import FAST_REPLICATION_CONFIGS, wait_until

APP = Path(__file__).resolve().parents[2] / "examples" / "eos" / "app.py"
TID = "eos-app-1"
PARTITIONS = 3
TXN_CONFIGS = {"transaction.abort.timed.out.transaction.cleanup.interval.ms": "500"}


class App:
    """The example as a child process; restarted at will, always stopped at the end."""

    def __init__(self, bootstrap: str, log: Path) -> None:
        self.bootstrap = bootstrap
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), "--bootstrap", self.bootstrap, "--per-transaction",
             "20", "--transaction-timeout-ms", "5000", "--work-ms", "150"],
            stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.starts += 1

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def committed_lines(self) -> int:
        try:
            return self.log.read_bytes().count(b"committed ")
        except FileNotFoundError:
            return 0


def _feed(bootstrap: str, keys: int, per_key: int, stop: threading.Event) -> None:
    """Input in rounds (one record per key per round), so it keeps arriving during kills."""
    with Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}) as producer:
        for seq in range(per_key):
            if stop.is_set():
                return
            for k in range(keys):
                producer.send("eos-in", f"k{k}-{seq:05d}".encode(), key=f"k{k}".encode())
            producer.flush(30)
            time.sleep(0.02)  # pacing: the input arrives over several seconds


def _read_committed(bootstrap: str) -> list[tuple[bytes, bytes]]:
    tps = [TopicPartition("eos-out", p) for p in range(PARTITIONS)]
    out: list[tuple[bytes, bytes]] = []
    with Consumer({"bootstrap.servers": bootstrap, "isolation.level": "read_committed",
                   "auto.offset.reset": "earliest"}) as reader:
        reader.assign(tps)
        end = reader.end_offsets(tps)  # read_committed: the last stable offsets
        deadline = time.monotonic() + 30
        while any(reader.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, "read_committed reader stuck below the LSO"
            for records in reader.poll(timeout_ms=500).values():
                out.extend((r.key, r.value) for r in records)
    return out


def _coordinator(cluster) -> int:
    from rillet.transport.endpoint import ClientEndpoint

    with ClientEndpoint() as endpoint:
        for b in cluster.broker_ids:
            if cluster.pid(b) is None:
                continue
            r = endpoint.request(cluster.address(b), P.FindCoordinatorRequest(
                key=TID, key_type=P.COORDINATOR_TRANSACTION), 5000).result(8)
            if not r.error_code:
                return r.node_id
    raise AssertionError("no transaction coordinator found")


def _run(cluster, tmp_path: Path, keys: int, per_key: int, app_kills: int,
         broker_kills: bool) -> None:
    bootstrap = cluster.bootstrap_servers
    rf = min(3, len(cluster.broker_ids))
    with Admin({"bootstrap.servers": bootstrap, "request.timeout.ms": 15000}) as admin:
        admin.create_topics([
            NewTopic(t, PARTITIONS, rf, configs={"min.insync.replicas": str(min(2, rf))})
            for t in ("eos-in", "eos-out")])
    stop = threading.Event()
    feeder = threading.Thread(target=_feed, args=(bootstrap, keys, per_key, stop), daemon=True)
    app = App(bootstrap, tmp_path / "app.log")
    try:
        feeder.start()
        app.start()

        def progress_since(seen: int):
            app.ensure_running()  # an instance that died on its own is restarted too
            n = app.committed_lines()
            return n > seen and n

        seen = 0
        tps = [TopicPartition("eos-out", p) for p in range(PARTITIONS)]
        with Consumer({"bootstrap.servers": bootstrap}) as dirty, Consumer(
                {"bootstrap.servers": bootstrap, "isolation.level": "read_committed"}) as clean:

            def open_transaction() -> bool:
                # records above the last stable offset: the app is inside a transaction
                app.ensure_running()
                hw, lso = dirty.end_offsets(tps), clean.end_offsets(tps)
                return any(hw[tp] > lso[tp] for tp in tps)

            for _ in range(app_kills):
                seen = wait_until(lambda s=seen: progress_since(s), 60, "the app to commit")
                wait_until(open_transaction, 30, "the app inside a transaction")
                app.kill()
                app.start()
        if broker_kills:
            victims = [_coordinator(cluster)]
            with Admin({"bootstrap.servers": bootstrap}) as admin:
                leaders = [p.leader for p in admin.describe_topics(["eos-out"])["eos-out"]
                           .partitions]
            victims.append(next((b for b in leaders if b != victims[0]), victims[0]))
            for victim in victims:
                seen = wait_until(lambda s=seen: progress_since(s), 60, "the app to commit")
                cluster.kill(victim)
                seen = wait_until(lambda s=seen: progress_since(s), 90,
                                  f"the app to commit with broker {victim} down")
                cluster.start_broker(victim)
                cluster.wait_ready(60, broker_ids=[victim])
        feeder.join(120)
        assert not feeder.is_alive(), "the input was not all written"
        total = keys * per_key

        def drained():
            app.ensure_running()
            out = _read_committed(bootstrap)
            return len(out) >= total and out

        out = wait_until(drained, 120, f"{total} results in eos-out")
    finally:
        stop.set()
        app.kill()
    # exactly one result per input record, in input order per key
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in out:
        by_key[key].append(value)
    assert len(out) == total, f"{len(out)} results for {total} inputs (duplicates?)"
    for k in range(keys):
        expected = [f"k{k}-{seq:05d}|processed".encode() for seq in range(per_key)]
        assert by_key[f"k{k}".encode()] == expected, f"key k{k}"
    assert app.starts == app_kills + 1 or app.starts > app_kills  # restarted each time


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_exactly_once_through_app_kills(cluster_factory, tmp_path):
    cluster = cluster_factory(1, TXN_CONFIGS)
    _run(cluster, tmp_path, keys=12, per_key=60, app_kills=2, broker_kills=False)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_exactly_once_through_app_and_broker_kills(cluster_factory, tmp_path):
    cluster = cluster_factory(3, {**FAST_REPLICATION_CONFIGS, **TXN_CONFIGS})
    _run(cluster, tmp_path, keys=30, per_key=120, app_kills=5, broker_kills=True)
