"""Shared helpers for the log-store tests: batch factories and a fault-injecting filesystem."""

from __future__ import annotations

from pathlib import Path

from rillet.logstore.batch import BatchBuilder, Codec, iter_batches, records
from rillet.logstore.fs import FileSystem


def make_batch(values, *, ts: int = 1_000, key=None, codec: Codec = Codec.NONE) -> bytes:
    """One batch; ``values`` are bytes (or None), keys all ``key`` unless values are pairs."""
    b = BatchBuilder(codec)
    for i, v in enumerate(values):
        if isinstance(v, tuple):
            b.append(ts + i, v[0], v[1])
        else:
            b.append(ts + i, key, v)
    return b.build()


def read_all(log, start: int | None = None, max_bytes: int = 1 << 20):
    """Every record from ``start`` (default log start) to the log end, via read()."""
    offset = log.log_start_offset if start is None else start
    out = []
    while offset < log.log_end_offset:
        data = log.read(offset, max_bytes)
        if not data:
            break
        last = None
        for header, _ in iter_batches(data):
            last = header
        out.extend(r for r in records(data) if r.offset >= offset)
        offset = last.next_offset
    return out


class FaultyFS(FileSystem):
    """Real files, but fsync can be made to fail (like EIO after a disk error)."""

    def __init__(self) -> None:
        self.fail_fsync = False
        self.fsyncs = 0

    def fsync_fd(self, fd: int) -> None:
        if self.fail_fsync:
            raise OSError(5, "Input/output error (injected)")
        self.fsyncs += 1
        super().fsync_fd(fd)


class NoSyncFS(FileSystem):
    """fsync is a no-op: for tests that simulate crashes by cutting files themselves."""

    def fsync_fd(self, fd: int) -> None:
        pass


def segment_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix == ".log")
