"""Issue #15's fault schedule on real processes: 4 share consumers (processes) on a topic of
2 partitions (3 brokers, RF 3); one consumer is kill -9ed while it holds records and the
leader of a partition is killed. Every record is eventually accepted or dead-lettered (none
lost), and a record whose accept was acknowledged (commit_sync answered) is never delivered
again. The default run is bounded (600 records); ``-m slow`` runs 5,000 and kills twice."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition
from tests.integration.cluster_helpers import partition_meta

pytestmark = [pytest.mark.integration]

TOPIC, GROUP = "work", "workers"


def _events(logs: list[Path]) -> list[dict]:
    out = []
    for path in logs:
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # the last line of a killed worker may be cut
    return out


def _dead_letters(servers: str) -> set[tuple[int, int]]:
    with Admin({"bootstrap.servers": servers}) as admin:
        if f"{TOPIC}.dlq" not in admin.list_topics():
            return set()
    c = Consumer({"bootstrap.servers": servers, "auto.offset.reset": "earliest"})
    try:
        parts = sorted(c.partitions_for_topic(f"{TOPIC}.dlq"))
        tps = [TopicPartition(f"{TOPIC}.dlq", p) for p in parts]
        c.assign(tps)
        ends = c.end_offsets(tps)
        out, deadline = set(), time.monotonic() + 20
        while any(c.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=200).values():
                for r in records:
                    h = dict(r.headers)
                    out.add((int(h["rillet.dlq.partition"]), int(h["rillet.dlq.offset"])))
        return out
    finally:
        c.close()


def _all_done(servers: str, n: int) -> bool:
    """Every record of both partitions acknowledged or archived (and every archived one
    written to the dead-letter topic), per the partition leaders."""
    try:
        with Admin({"bootstrap.servers": servers, "request.timeout.ms": 5000}) as admin:
            parts = admin.describe_share_group(GROUP, [TOPIC]).partitions
    except Exception:  # noqa: BLE001 - a leader moving: ask again
        return False
    return all(parts[TopicPartition(TOPIC, p)].start_offset == n // 2
               and parts[TopicPartition(TOPIC, p)].archived
               == parts[TopicPartition(TOPIC, p)].dead_lettered for p in (0, 1))


def _run_schedule(cluster, tmp_path: Path, n: int, kills: int) -> None:
    servers = cluster.bootstrap_servers
    with Admin({"bootstrap.servers": servers}) as admin:
        admin.create_topics([NewTopic(TOPIC, 2, 3, configs={"min.insync.replicas": "2"})])
        admin.alter_group_configs(GROUP, set={
            "share.auto.offset.reset": "earliest", "share.record.lock.duration.ms": 3000,
            "share.delivery.count.limit": 10, "share.heartbeat.interval.ms": 500,
            "share.session.timeout.ms": 3000})
    with Producer({"bootstrap.servers": servers, "acks": "all"}) as producer:
        for i in range(n):
            producer.send(TOPIC, value=f"r{i}".encode(), partition=i % 2)
        producer.flush(30)
    logs = [tmp_path / f"worker-{i}.jsonl" for i in range(4)]
    procs: list[subprocess.Popen] = []

    def start(i: int, work_ms: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.share_worker", servers, GROUP, TOPIC,
             str(logs[i]), f"w{i}", str(work_ms)],
            stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"worker-{i}.err", "w"))  # noqa: SIM115

    try:
        # worker 0 is slow (50 ms a record) and starts alone, so it is killed holding a batch
        # it has not acknowledged; the others start after (started together, on a loaded
        # machine the fast ones sometimes took every record before worker 0 got one)
        procs = [start(0, 50)]

        def accepted() -> set[tuple[int, int]]:
            return {(e["partition"], o) for e in _events(logs) if e["kind"] == "accepted"
                    for o in e["offsets"]}

        def wait_for(pred, timeout_s: float, what: str) -> None:
            deadline = time.monotonic() + timeout_s
            while not pred():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {what}; accepted "
                                         f"{len(accepted())} of {n}")
                time.sleep(0.2)

        def w0_holds() -> bool:
            ev = [e for e in _events(logs[:1]) if e["kind"] in ("rec", "accepted")]
            return bool(ev) and ev[-1]["kind"] == "rec"

        wait_for(w0_holds, 60, "worker 0 holding records")
        procs[0].send_signal(signal.SIGKILL)  # mid-batch: its records' locks must expire
        procs[0].wait(10)
        procs += [start(i, 1) for i in range(1, 4)]
        for k in range(kills):
            wait_for(lambda k=k: len(accepted()) >= n * (k + 2) // (kills + 3), 90,
                     "progress before the leader kill")
            leader = partition_meta(cluster, TOPIC, k % 2).leader
            cluster.kill(leader)
            wait_for(lambda k=k, leader=leader: (m := partition_meta(cluster, TOPIC, k % 2))
                     is not None and m.leader >= 0 and m.leader != leader, 30, "a new leader")
            cluster.start_broker(leader)
        everything = {(i % 2, i // 2) for i in range(n)}

        def finished() -> bool:
            # an accept whose answer was lost with a killed leader's connection is durable
            # but unknown to the worker: then the leaders' share-partition state says it
            return everything <= accepted() | _dead_letters(servers) or _all_done(servers, n)

        wait_for(finished, 120, "every record accepted or dead-lettered")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    events = _events(logs)
    accepted_at: dict[tuple[int, int], float] = {}
    for e in events:
        if e["kind"] == "accepted":
            for o in e["offsets"]:
                key = (e["partition"], o)
                accepted_at[key] = min(accepted_at.get(key, e["t"]), e["t"])
    late = [(e["who"], e["partition"], e["offset"], e["count"]) for e in events
            if e["kind"] == "rec" and (e["partition"], e["offset"]) in accepted_at
            and e["t"] > accepted_at[(e["partition"], e["offset"])]]
    assert late == [], f"accepted records delivered again: {late[:10]}"
    delivered = {(e["partition"], e["offset"]) for e in events if e["kind"] == "rec"}
    # none lost: every record reached a worker (which accepts all it gets) or the DLQ
    everything = {(i % 2, i // 2) for i in range(n)}
    assert not everything - delivered - _dead_letters(cluster.bootstrap_servers)
    # what worker 0 held when it was killed (handed out, never acknowledged by it) came again:
    # to another worker, or to the DLQ. Not necessarily with a higher delivery count: when a
    # leader dies before any state write counted the acquisition, the new leader hands the
    # record out as delivery 1 again (acquisitions alone are not persisted, as in Kafka).
    w0 = [e for e in events if e["who"] == "w0"]
    held = ({(e["partition"], e["offset"]) for e in w0 if e["kind"] == "rec"}
            - {(e["partition"], o) for e in w0 if e["kind"] == "accepted" for o in e["offsets"]})
    assert held, "worker 0 was killed holding records"
    others = {(e["partition"], e["offset"]) for e in events
              if e["kind"] == "rec" and e["who"] != "w0"}
    assert held <= others | _dead_letters(cluster.bootstrap_servers), (
        f"the killed worker's records did not come again: {sorted(held - others)[:10]}")


@pytest.mark.slow  # CI time (20 s); test_share_failover.py kills a leader in the default suite
@pytest.mark.timeout(240)
def test_share_consumers_survive_a_killed_consumer_and_leader(cluster3, tmp_path) -> None:
    _run_schedule(cluster3, tmp_path, n=600, kills=1)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_share_consumers_fault_schedule_long(cluster3, tmp_path) -> None:
    _run_schedule(cluster3, tmp_path, n=5000, kills=2)
