"""The only module of the log store that touches the filesystem.

Everything else receives a ``FileSystem`` (and the ``SegmentFile`` handles it opens), so tests
can inject faults (a failing fsync, a torn write) by subclassing it. Not thread-safe: the
partition log's owner calls it from one thread.

Checkpoint files (recovery point, log start offset, leader epochs, index files) share one
framing: ``b"RCK" | version u8 | blake3-128 of the body | body (CBOR)``, written atomically
(temp file, fsync, rename, fsync the directory). A missing, torn or corrupt checkpoint reads
as None, and the caller rebuilds from the log: never "empty state" by accident.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import blake3
import cbor2

_CHECKPOINT_MAGIC = b"RCK\x01"
_CHECKPOINT_DIGEST = 16
TEMP_SUFFIX = ".tmp"


# Preallocation (Kafka's file.preallocate, done lazily): once a segment file passes
# PREALLOCATE_AFTER bytes, blocks are reserved ahead of the writes with
# fallocate(FALLOC_FL_KEEP_SIZE), min(file size, PREALLOCATE_MAX) at a time. The file size
# (what recovery and readers see) never changes; appends into reserved blocks skip the
# filesystem's per-write block reservation (~10% cheaper 64 KiB writes on ext4). A small
# partition never preallocates, a busy one reserves at most PREALLOCATE_MAX beyond its end,
# and the reservation is given back (ftruncate to the size) when the segment is sealed or
# closed. Where fallocate is missing or unsupported, files are written as before.
PREALLOCATE_AFTER = 1 << 20
PREALLOCATE_MAX = 8 << 20
_FALLOC_FL_KEEP_SIZE = 1
_NO_PREALLOCATION = 1 << 62


def _load_fallocate():
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):  # not Linux/glibc: no preallocation
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


_fallocate = _load_fallocate() if sys.platform.startswith("linux") else None


class SegmentFile:
    """An append-only file opened for reading and writing (positioned reads, appends)."""

    __slots__ = ("path", "_fd", "_fs", "_reserved", "_preallocated")

    def __init__(self, path: Path, fd: int, fs: FileSystem) -> None:
        self.path = path
        self._fd = fd
        self._fs = fs
        # Writes ending at or below _reserved need no preallocation step.
        self._reserved = PREALLOCATE_AFTER
        self._preallocated = False

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def _reserve(self, end: int) -> None:
        """Reserve blocks ahead of ``end`` (a write is about to reach it)."""
        ahead = min(end, PREALLOCATE_MAX)
        if self._fs.preallocate(self._fd, end, ahead):
            self._reserved = end + ahead
            self._preallocated = True
        else:
            self._reserved = _NO_PREALLOCATION

    def release_preallocation(self, *, force: bool = False) -> None:
        """Give back blocks reserved beyond the end of the file (sealed or closing).
        ``force``: also when this handle reserved nothing (after a crash, recovery frees
        what the previous process reserved)."""
        if (self._preallocated or force) and self._fd >= 0:
            self.truncate(os.fstat(self._fd).st_size)

    def write_at(self, position: int, data) -> None:
        """Write all of ``data`` at ``position`` (the log always writes at its end)."""
        view = memoryview(data)
        if position + len(view) > self._reserved:
            self._reserve(position + len(view))
        while view:
            n = os.pwrite(self._fd, view, position)
            position += n
            view = view[n:]

    def write_parts_at(self, position: int, parts, total: int | None = None) -> None:
        """Write the concatenation of ``parts`` (``total`` bytes together, computed if not
        given) at ``position``: one pwritev, no joining."""
        if total is None:
            total = sum(len(p) for p in parts)
        if position + total > self._reserved:
            self._reserve(position + total)
        n = os.pwritev(self._fd, parts, position)
        if n < total:  # rare short write: finish the remainder the simple way
            self.write_at(position + n, memoryview(b"".join(parts))[n:])

    def read_at(self, position: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``position`` (fewer only at the end of the file)."""
        data = os.pread(self._fd, size, position)
        if len(data) == size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = os.pread(self._fd, size - got, position + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)  # also frees any reservation beyond ``size``
        self._preallocated = False
        self._reserved = max(size, PREALLOCATE_AFTER)

    def fsync(self) -> None:
        self._fs.fsync_fd(self._fd)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            if self._preallocated:
                try:
                    self.release_preallocation()
                except OSError:
                    pass  # only reserved space is at stake, never data
            os.close(self._fd)
            self._fd = -1


class FileSystem:
    """Real files. Subclass and override to inject faults in tests."""

    # A broker installs a group commit here (actors/group_sync.py): fn(fd, log_dir) returns
    # once everything written to fd's filesystem before the call is durable (log_dir: the
    # directory holding the partition directories). None: per-file fsync.
    group_barrier = None
    # And the interval flush without the owner (actors/group_sync.py, ``for_log_dir``):
    # fn(log_dir) -> an object with ``started``, ``done``, ``failed_after(started)`` and
    # ``want(delay_ms)``. None: the owner's maybe_flush fsyncs.
    group_sync = None

    def open_segment(self, path: Path) -> SegmentFile:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        return SegmentFile(path, fd, self)

    def fsync_fd(self, fd: int) -> None:
        os.fsync(fd)

    def preallocate(self, fd: int, offset: int, length: int) -> bool:
        """Reserve blocks for [offset, offset + length) without changing the file size.
        False if the platform or filesystem cannot (or the disk is full): never raises,
        since only speed is at stake; a write that really lacks space fails on its own."""
        if _fallocate is None:
            return False
        return _fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) == 0

    def fsync_dir(self, directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            self.fsync_fd(fd)
        finally:
            os.close(fd)

    def makedirs(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)

    def listdir(self, directory: Path) -> list[str]:
        return sorted(os.listdir(directory))

    def exists(self, path: Path) -> bool:
        return path.exists()

    def remove(self, path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def rename(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def read_bytes(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def write_atomic(self, path: Path, data: bytes, *, durable: bool = True) -> None:
        """Temp file, fsync, rename over ``path``, fsync the directory.

        ``durable=False`` writes ``path`` in place with no fsync: after a power loss it holds
        the old content, the new one, or a torn mix. Only for checksummed files whose loss or
        staleness costs work and never data (a periodic recovery point, a producer-state
        snapshot): recovery then revalidates more of the log or replays more headers. A
        process crash (kill -9) loses nothing either way: the page cache survives it."""
        if not durable:
            # in place: no temp file, no rename (metadata operations wait behind other
            # threads' fsyncs in the filesystem journal); a torn result fails its checksum
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                self._write_all(fd, data)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
            return
        tmp = path.with_name(path.name + TEMP_SUFFIX)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self._write_all(fd, data)
            self.fsync_fd(fd)
        finally:
            os.close(fd)
        self.rename(tmp, path)
        self.fsync_dir(path.parent)

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view, at = memoryview(data), 0
        while at < len(view):
            at += os.pwrite(fd, view[at:], at)

    def write_checkpoint(self, path: Path, value, *, durable: bool = True) -> None:
        body = cbor2.dumps(value)
        digest = blake3.blake3(body).digest(length=_CHECKPOINT_DIGEST)
        self.write_atomic(path, _CHECKPOINT_MAGIC + digest + body, durable=durable)

    def read_checkpoint(self, path: Path):
        """The value stored by write_checkpoint, or None if missing or corrupt."""
        data = self.read_bytes(path)
        return decode_checkpoint(data) if data is not None else None


def decode_checkpoint(data: bytes):
    head = len(_CHECKPOINT_MAGIC) + _CHECKPOINT_DIGEST
    if len(data) < head or not data.startswith(_CHECKPOINT_MAGIC):
        return None
    body = data[head:]
    if blake3.blake3(body).digest(length=_CHECKPOINT_DIGEST) != data[len(_CHECKPOINT_MAGIC) : head]:
        return None
    try:
        return cbor2.loads(body)
    except Exception:
        return None
