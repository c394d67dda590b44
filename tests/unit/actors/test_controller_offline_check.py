"""The active controller's offline-partition check (damaged partitions that may now get a
leader) runs again only on a new metadata image, not over every partition each second
(issue #12: at 3,000 partitions that pass was the idle controller's largest Python cost).

A single-voter Controller actor, started for real on its lane, with a fake clock; the pure
check (coordinator/control/partitions.elect_offline) is wrapped to count its passes."""

from __future__ import annotations

import time

import pytest
from rillet.actors import controller as C
from rillet.coordinator import metadata as md
from rillet.coordinator.control import ControllerResult
from rillet.transport import protocol as P


def _until(check, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture
def passes(monkeypatch):
    """The images the offline check looked at; ``answer`` (a list of records) is what the
    next pass returns (then emptied)."""
    seen: list[md.MetadataImage] = []
    answer: list[object] = []
    real = C.cp.elect_offline

    def counting(image, *, unclean_default):
        seen.append(image)
        if answer:
            records = list(answer)
            answer.clear()
            return ControllerResult(records, None)
        return real(image, unclean_default=unclean_default)

    monkeypatch.setattr(C.cp, "elect_offline", counting)

    def decide(req, image, configs, unclean):  # an AlterPartition: one new topic
        return ControllerResult([md.CreateTopic(name=f"t{req.partition}", topic_id="x")], "ok")

    monkeypatch.setattr(C, "decide", decide)
    return seen, answer


def test_the_offline_check_runs_once_per_image_not_every_second(tmp_path, passes):
    seen, answer = passes
    clock = [1_000_000]
    images: list[md.MetadataImage] = []
    ref = C.Controller.start(
        broker_id=1, metadata_dir=tmp_path, publish=lambda old, new: images.append(new),
        broker_configs={}, endpoint=None, clock=lambda: clock[0],
    )
    try:
        _until(lambda: ref.ask(C.GetStatus(), timeout=5).controller_id == 1)
        _until(lambda: any(i.metadata_version > 0 for i in images))  # bootstrap applied

        def idle_seconds(n: int) -> None:
            for _ in range(n):
                clock[0] += 1100  # past the 1 s between checks
                ref.tell(C.Tick())
                ref.ask(C.GetStatus(), timeout=5)

        idle_seconds(2)
        settled = len(seen)
        assert settled >= 1  # the check did run on this image
        idle_seconds(6)
        assert len(seen) == settled, "an unchanged image was checked again"
        # a new image (an admin request's record): checked once more, then no more
        done: list[object] = []
        ref.tell(C.Admin(P.AlterPartitionRequest(
            broker_id=1, topic="t", partition=3, leader_epoch=0, partition_epoch=0,
            new_isr=(1,), new_isr_incarnations=("i",), broker_incarnation="i",
        ), done.append, forwardable=False))
        _until(lambda: done)
        idle_seconds(4)
        assert len(seen) == settled + 1
        assert "t3" in seen[-1].topics
        # a pass that found work is repeated until one finds none (its proposal may not
        # have been applied): here the stand-in's record changes the image, so the next
        # pass sees the new image and finds nothing
        answer.append(md.CreateTopic(name="elected", topic_id="y"))
        ref.tell(C.Admin(P.AlterPartitionRequest(
            broker_id=1, topic="t", partition=4, leader_epoch=0, partition_epoch=0,
            new_isr=(1,), new_isr_incarnations=("i",), broker_incarnation="i",
        ), done.append, forwardable=False))
        _until(lambda: len(done) == 2)
        idle_seconds(5)
        assert len(seen) == settled + 3
        assert "elected" in seen[-1].topics
    finally:
        ref.stop()
