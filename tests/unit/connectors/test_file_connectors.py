"""File source and sink, driven directly."""

from __future__ import annotations

import os

from rillet.connectors.api import SinkRecord, TopicPartition
from rillet.connectors.builtin.file import FileSinkTask, FileSourceConnector, FileSourceTask

from .helpers import commit, sink_task, source_task


def poll_all(task, rounds=5):
    out = []
    for _ in range(rounds):
        out += task.poll()
    return out


def test_tails_lines_in_batches_and_resumes_at_the_byte_position(tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes(b"one\ntwo\r\nthree\npart")
    cfg = {"file": str(f), "topic": "t", "batch.size": "2"}
    task = source_task(FileSourceTask, cfg)
    first = task.poll()
    assert [r.value for r in first] == ["one", "two"]
    assert first[1].source_offset["position"] == 9 and first[0].source_partition == {
        "filename": str(f)}
    assert [r.value for r in task.poll()] == ["three"]
    assert task.poll() == []  # "part" has no newline yet
    with open(f, "ab") as fh:
        fh.write(b"ial\nfive\n")
    rest = poll_all(task)
    assert [r.value for r in rest] == ["partial", "five"]
    task.stop()
    resumed = source_task(FileSourceTask, cfg, commit(first))
    assert [r.value for r in poll_all(resumed)] == ["three", "partial", "five"]
    resumed.stop()


def test_waits_for_a_missing_file_and_rereads_a_truncated_one(tmp_path):
    f = tmp_path / "later.txt"
    task = source_task(FileSourceTask, {"file": str(f), "topic": "t"})
    assert task.poll() == []
    f.write_text("a\nb\n")
    assert [r.value for r in task.poll()] == ["a", "b"]
    with open(f, "r+b") as fh:  # copytruncate-style
        fh.truncate(0)
    f.write_text("c\n")
    assert [r.value for r in poll_all(task)] == ["c"]
    task.stop()


def test_rotation_drains_the_old_file_then_reads_the_new_one(tmp_path):
    f = tmp_path / "app.log"
    f.write_text("1\n2\n")
    task = source_task(FileSourceTask, {"file": str(f), "topic": "t", "batch.size": "1"})
    assert [r.value for r in task.poll()] == ["1"]
    os.rename(f, tmp_path / "app.log.1")
    f.write_text("new\n")
    assert [r.value for r in poll_all(task)] == ["2", "new"]
    task.stop()


def test_a_restart_after_rotation_reads_the_new_file_from_the_start(tmp_path):
    f = tmp_path / "app.log"
    f.write_text("old line that is long\n")
    task = source_task(FileSourceTask, {"file": str(f), "topic": "t"})
    stored = commit(task.poll())
    task.stop()
    os.rename(f, tmp_path / "app.log.1")
    f.write_text("x\n")
    again = source_task(FileSourceTask, {"file": str(f), "topic": "t"}, stored)
    assert [r.value for r in poll_all(again)] == ["x"]
    again.stop()


def test_files_are_split_across_tasks(tmp_path):
    c = FileSourceConnector()
    c.start(FileSourceConnector.config_def.parse({"file": "a,b,c", "topic": "t"}))
    assert [t["file"] for t in c.task_configs(2)] == [["a", "c"], ["b"]]
    assert len(c.task_configs(10)) == 3


def test_sink_writes_lines_and_cuts_back_uncommitted_writes_after_a_crash(tmp_path):
    out = tmp_path / "out.txt"
    tp = TopicPartition("t", 0)
    task = sink_task(FileSinkTask, {"file": str(out)})
    task.open([tp])
    assert task.context.requested_offsets == {}
    task.put([SinkRecord("t", 0, 0, value="a"), SinkRecord("t", 0, 1, value={"n": 1}),
              SinkRecord("t", 0, 2, value=None), SinkRecord("t", 0, 3, value=b"c")])
    task.flush({tp: 4})
    task.put([SinkRecord("t", 0, 4, value="lost on crash")])
    task.fh.flush()  # the bytes reach the file but no commit happens: a crash now
    assert out.read_text().endswith("lost on crash\n")
    again = sink_task(FileSinkTask, {"file": str(out)})
    again.open([tp])
    assert out.read_text() == 'a\n{"n":1}\nc\n'
    assert again.context.requested_offsets == {tp: 4}
    again.stop()
    task.stop()
