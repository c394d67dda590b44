"""File source (tail lines into a topic) and file sink (one line per record value).

File source (``connector.class=file-source``):
    ``file`` one or more paths (comma-separated; split across up to ``tasks.max`` tasks),
    ``topic``, ``batch.size`` (2000 lines per poll at most), ``poll.interval.ms`` (200: the
    wait when no file has new lines). Source partition ``{"filename": path}``, source offset
    ``{"position": byte offset just after the line, "inode": n}`` as in Kafka's
    FileStreamSource (plus the inode). A file that does not exist yet is waited for. A file
    that shrinks below the position (truncated, copytruncate) is read again from the start; a
    file replaced by a new one at the same path (rotated: another inode) is drained to its
    end and then the new file is read from the start. Lines end with ``\\n`` (a trailing
    ``\\r`` is dropped); an incomplete last line is emitted once its newline is written.
    Values are str (invalid UTF-8 is replaced), keys None.

File sink (``connector.class=file-sink``): ``file``, ``topics``; one task. Each value is
    written as one line (str as is, bytes decoded, other values as JSON; tombstones skipped).
    Before offsets are committed the file is flushed and fsynced and the consumed offsets and
    the file's length are written (atomically) to ``FILE.offsets.json``; on start the file is
    cut back to that length and consumption resumes from those offsets, so a crash neither
    loses nor duplicates lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..api import (
    ExactlyOnceSupport,
    SinkConnector,
    SinkRecord,
    SinkTask,
    SourceConnector,
    SourceRecord,
    SourceTask,
    TopicPartition,
)
from ..config import ConfigDef, key

READ_CHUNK = 1 << 16


class FileSourceConnector(SourceConnector):
    config_def = ConfigDef([
        key("file", "list", doc="the file(s) to tail, comma-separated"),
        key("topic", doc="the topic to write lines to"),
        key("batch.size", "int", 2000, minimum=1),
        key("poll.interval.ms", "int", 200, minimum=1),
    ])

    def exactly_once_support(self, config: Any = None) -> ExactlyOnceSupport:
        """Its source offsets are positions it resumes from exactly (KIP-618)."""
        return ExactlyOnceSupport.SUPPORTED

    def task_class(self) -> type[SourceTask]:
        return FileSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        files = list(self.config["file"])
        n = max(1, min(max_tasks, len(files)))
        return [{**self.config, "file": files[i::n]} for i in range(n)]


@dataclass
class _Tailed:
    path: str
    position: int = 0
    inode: int | None = None
    fh: IO[bytes] | None = None
    buffer: bytearray = field(default_factory=bytearray)


class FileSourceTask(SourceTask):
    def start(self, config: dict[str, Any]) -> None:
        c = FileSourceConnector.config_def.parse(config, allow_unknown=True)
        self.topic = c["topic"]
        self.batch_size = c["batch.size"]
        self.wait_ms = c["poll.interval.ms"]
        self.files = []
        for path in c["file"]:
            t = _Tailed(path)
            stored = self.context.offset_storage_reader.offset({"filename": path}) or {}
            t.position = int(stored.get("position", 0))
            t.inode = stored.get("inode")
            self.files.append(t)

    def idle_wait_ms(self) -> int:
        return self.wait_ms

    def poll(self) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        for t in self.files:
            if len(out) >= self.batch_size:
                break
            self._check(t)
            if t.fh is not None:
                out += self._read_lines(t, self.batch_size - len(out))
        return out

    def stop(self) -> None:
        for t in self.files:
            if t.fh is not None:
                t.fh.close()
                t.fh = None

    # --- internals -------------------------------------------------------------------------

    def _check(self, t: _Tailed) -> None:
        """Open the file when it appears; notice truncation and rotation."""
        try:
            st = os.stat(t.path)
        except FileNotFoundError:
            return
        if t.fh is None:
            t.fh = open(t.path, "rb")  # noqa: SIM115 - kept open while tailing
            ino = os.fstat(t.fh.fileno()).st_ino
            if t.inode is not None and t.inode != ino:
                t.position = 0  # replaced while we were not running
            t.inode = ino
            t.buffer.clear()
            t.fh.seek(0, os.SEEK_END)
            if t.fh.tell() < t.position:
                t.position = 0
            t.fh.seek(t.position)
            return
        size = os.fstat(t.fh.fileno()).st_size
        if size < t.position + len(t.buffer):  # truncated in place
            t.position = 0
            t.buffer.clear()
            t.fh.seek(0)
        elif st.st_ino != t.inode and size == t.fh.tell() and b"\n" not in t.buffer:
            # rotated: the old file is drained (no more bytes after our read position), so
            # switch to the new one
            if not t.fh.read(1):
                t.fh.close()
                t.fh = None
                t.position = 0
                t.inode = None
                t.buffer.clear()
                self._check(t)

    def _read_lines(self, t: _Tailed, limit: int) -> list[SourceRecord]:
        assert t.fh is not None
        out: list[SourceRecord] = []
        while len(out) < limit:
            nl = t.buffer.find(b"\n")
            if nl < 0:
                chunk = t.fh.read(READ_CHUNK)
                if not chunk:
                    break
                t.buffer += chunk
                continue
            line = bytes(t.buffer[:nl])
            del t.buffer[: nl + 1]
            t.position += nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            out.append(SourceRecord(
                {"filename": t.path}, {"position": t.position, "inode": t.inode}, self.topic,
                value=line.decode("utf-8", "replace")))
        return out


class FileSinkConnector(SinkConnector):
    config_def = ConfigDef([key("file", doc="the file to append lines to")])

    def task_class(self) -> type[SinkTask]:
        return FileSinkTask

    def task_configs(self, max_tasks: int) -> list[dict[str, Any]]:
        return [dict(self.config)]  # one writer per file

    def alter_offsets(self, config: dict[str, Any],
                      offsets: Mapping[TopicPartition, int | None]) -> bool:
        side = Path(str(config["file"]) + ".offsets.json")
        state = _read_sidecar(side)
        if state is None:
            return True
        for tp, off in offsets.items():
            k = f"{tp[0]}/{tp[1]}"
            if off is None:
                state["offsets"].pop(k, None)
            else:
                state["offsets"][k] = int(off)
        _write_sidecar(side, state)
        return True


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _write_sidecar(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def value_to_line(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


class FileSinkTask(SinkTask):
    def start(self, config: dict[str, Any]) -> None:
        self.path = Path(str(config["file"]))
        self.sidecar = Path(str(self.path) + ".offsets.json")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = _read_sidecar(self.sidecar)
        size = self.path.stat().st_size if self.path.exists() else 0
        if state is None:
            # remember where we started so a crash before the first commit cuts back here
            state = {"size": size, "offsets": {}}
            _write_sidecar(self.sidecar, state)
        elif size > state["size"]:
            with open(self.path, "r+b") as f:
                f.truncate(state["size"])
                os.fsync(f.fileno())
        self.state = state
        self.fh = open(self.path, "ab")  # noqa: SIM115 - owned by the task until stop()

    def open(self, partitions: Sequence[TopicPartition]) -> None:
        stored = self.state["offsets"]
        self.context.offset({tp: stored[f"{tp.topic}/{tp.partition}"] for tp in partitions
                             if f"{tp.topic}/{tp.partition}" in stored})

    def put(self, records: list[SinkRecord]) -> None:
        for r in records:
            line = value_to_line(r.value)
            if line is not None:
                self.fh.write(line.encode() + b"\n")

    def flush(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.state["size"] = self.fh.tell()
        for tp, off in offsets.items():
            self.state["offsets"][f"{tp[0]}/{tp[1]}"] = int(off)
        _write_sidecar(self.sidecar, self.state)

    def stop(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()
