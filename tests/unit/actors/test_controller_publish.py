"""The controller at scale (issue #12): images are published off its thread, and leaders'
AlterPartition requests go into one Raft entry together.

A single-voter Controller actor, started for real on its lane. ``decide`` is replaced by a
stand-in that turns every AlterPartition into one small record (the pure decision is tested
in tests/unit/coordinator); what is tested here is the shell: which thread publishes, when
the answer is sent, how many entries the requests cost."""

from __future__ import annotations

import threading
import time

import pytest
from rillet.actors import controller as C
from rillet.actors.metadata_publisher import MetadataPublisher
from rillet.coordinator import metadata as md
from rillet.coordinator.control import ControllerResult
from rillet.transport import protocol as P


def _alter(partition: int) -> P.AlterPartitionRequest:
    return P.AlterPartitionRequest(
        broker_id=1, topic="t", partition=partition, leader_epoch=0, partition_epoch=0,
        new_isr=(1,), new_isr_incarnations=("i",), broker_incarnation="i",
    )


@pytest.fixture
def stand_in_decide(monkeypatch):
    seen: list[int] = []

    def decide(req, image, configs, unclean):
        seen.append(req.partition)
        record = md.CreateTopic(name=f"t{req.partition}-{len(seen)}", topic_id=str(len(seen)))
        return ControllerResult([record], f"ok-{req.partition}")

    monkeypatch.setattr(C, "decide", decide)
    return seen


def _until(check, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def _start(tmp_path, publish, images: list, after_publish=None):
    """The controller, once it leads and has published its bootstrap (metadata.version):
    (its ref, its applied index then)."""
    ref = C.Controller.start(
        broker_id=1, metadata_dir=tmp_path, publish=publish, broker_configs={}, endpoint=None,
        after_publish=after_publish,
    )
    _until(lambda: any(image.metadata_version > 0 for image in images))
    _until(lambda: ref.ask(C.GetStatus(), timeout=5).controller_id == 1)
    return ref, ref.ask(C.GetStatus(), timeout=5).applied_index


def test_a_slow_publication_does_not_stop_the_controller_and_delays_the_answer(
    tmp_path, stand_in_decide
):
    release = threading.Event()
    published: list[str] = []

    images: list = []

    def slow_publish(old, new):  # e.g. starting 10,000 partition actors
        if any(name.startswith("t7-") for name in new.topics):
            release.wait(10)
        published.append(threading.current_thread().name)
        images.append(new)

    publisher = MetadataPublisher(slow_publish, name="test-publisher")
    ref, index = _start(tmp_path, publisher.offer, images, publisher.after)
    try:
        answers: list[object] = []
        ref.tell(C.Admin(_alter(7), answers.append, forwardable=False))
        _until(lambda: ref.ask(C.GetStatus(), timeout=5).applied_index == index + 1)
        # committed, its publication blocked: the controller still answers at once (Raft,
        # heartbeats), and the request's answer waits for the publication
        started = time.monotonic()
        status = ref.ask(C.GetStatus(), timeout=1)
        assert time.monotonic() - started < 1 and status.role == "leader"
        assert answers == []
        release.set()
        _until(lambda: answers == ["ok-7"])
        assert published and set(published) == {"test-publisher"}
    finally:
        release.set()
        ref.stop()
        publisher.stop()


def test_queued_alter_partitions_share_one_raft_entry(tmp_path, stand_in_decide):
    gate = threading.Event()
    images: list = []

    def publish(old, new):
        if "t0-1" in new.topics:
            gate.wait(10)  # hold the first entry's answer: the others queue meanwhile
        images.append(new)

    publisher = MetadataPublisher(publish, name="test-publisher")
    ref, start_index = _start(tmp_path, publisher.offer, images, publisher.after)
    try:
        answers: list[object] = []
        lock = threading.Lock()

        def reply(response) -> None:
            with lock:
                answers.append(response)

        ref.tell(C.Admin(_alter(0), reply, forwardable=False))
        _until(lambda: ref.ask(C.GetStatus(), timeout=5).applied_index == start_index + 1)
        for p in range(1, 51):  # 50 partitions, partition 1 twice
            ref.tell(C.Admin(_alter(p), reply, forwardable=False))
        ref.tell(C.Admin(_alter(1), reply, forwardable=False))
        ref.ask(C.GetStatus(), timeout=5)  # after the 51 requests: all received
        assert len(stand_in_decide) == 1  # none decided while the first entry is unanswered
        gate.set()
        _until(lambda: len(answers) == 52)
        entries = ref.ask(C.GetStatus(), timeout=5).applied_index - start_index
        # 1 (partition 0) + 1 (1..50) + 1 (partition 1's second request): not 52
        assert entries == 3, entries
        assert sorted(answers) == sorted([f"ok-{p}" for p in range(51)] + ["ok-1"])
    finally:
        gate.set()
        ref.stop()
        publisher.stop()


def test_the_publisher_keeps_order_and_survives_a_failing_publication():
    seen: list[tuple[int, int]] = []

    def publish(old, new):
        if new == 2:
            raise RuntimeError("bad image")
        seen.append((old, new))

    publisher = MetadataPublisher(publish)
    done = threading.Event()
    for i in range(5):
        publisher.offer(i, i + 1)
    publisher.offer(6, 6)  # no change: nothing to publish
    publisher.after(done.set)
    assert done.wait(5)
    assert seen == [(0, 1), (2, 3), (3, 4), (4, 5)] and publisher.published == 4
    publisher.stop()
    assert publisher.idle()


def test_the_metadata_log_fsyncs_its_own_files_not_the_whole_filesystem(tmp_path, monkeypatch):
    """A broker's partition logs flush with one syncfs of the filesystem (group_sync); the
    Raft log must not wait for every partition's dirty data behind it."""
    from rillet.actors.metadata_log import PartitionRaftLog
    from rillet.coordinator.raft import LogEntry
    from rillet.logstore import fs as F

    barriers: list[str] = []
    fsyncs: list[int] = []
    monkeypatch.setattr(F.FileSystem, "group_barrier", lambda fd, d: barriers.append(d))
    real_fsync = F.os.fsync
    monkeypatch.setattr(F.os, "fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    log = PartitionRaftLog(tmp_path / "__cluster_metadata")
    try:
        fsyncs.clear()
        log.append([LogEntry(term=1, payload=b"x")])
        log.flush()
        assert barriers == [] and fsyncs  # its own segment, fsynced
        assert log.last_index == 1
    finally:
        log.close()
