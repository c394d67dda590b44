"""Property: however a file grows and however often the task restarts from its committed
offsets, the file source emits every complete line exactly once, in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.connectors.builtin.file import FileSourceTask

from .helpers import commit, source_task

chunks = st.lists(st.text(alphabet="ab\n\r é", max_size=12), max_size=12)
steps = st.lists(st.tuples(chunks, st.booleans(), st.integers(1, 4)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(steps=steps)
def test_every_complete_line_exactly_once(tmp_path_factory, steps):
    path = tmp_path_factory.mktemp("p") / "f.txt"
    offsets: dict = {}
    cfg = {"file": str(path), "topic": "t"}
    emitted: list[str] = []
    task = source_task(FileSourceTask, {**cfg, "batch.size": "2"}, offsets)
    for appended, restart, polls in steps:
        with open(path, "ab") as f:
            for c in appended:
                f.write(c.encode())
        for _ in range(polls):
            batch = task.poll()
            emitted += [r.value for r in batch]
            offsets.update(commit(batch))
        if restart:
            task.stop()
            task = source_task(FileSourceTask, {**cfg, "batch.size": "2"}, offsets)
    while batch := task.poll():  # drain
        emitted += [r.value for r in batch]
    task.stop()
    data = path.read_bytes().decode() if path.exists() else ""
    complete = data.split("\n")[:-1]  # the part after the last newline is not a line yet
    assert emitted == [line[:-1] if line.endswith("\r") else line for line in complete]
