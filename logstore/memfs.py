"""An in-memory ``FileSystem`` (the seam of fs.py) with page-cache crash semantics.

For simulations and tests that want the real log store (``PartitionLog``, its recovery and
its read-time verification) without disk I/O, and crashes that behave like a power loss:

* every file has two contents: what the page cache holds (what reads see) and what was
  fsynced (what survives a crash);
* a directory entry (create, rename, remove) survives a crash only once the directory was
  fsynced (``fsync_dir``) after it; until then a crash restores the directory as it was
  at its last fsync;
* ``crash(keep_unsynced)`` drops every open handle and keeps only what was fsynced, plus,
  per file, a prefix of the unsynced bytes appended after the synced content (a torn
  write: ``keep_unsynced(path, pending)`` says how many of the ``pending`` bytes land);
  ``PartitionLog.open`` on it afterwards runs the real recovery;
* ``flip(path, position)`` is bit rot at rest: one byte changes in both contents.

Directories are created at once and durably (``makedirs``). Handles opened before a crash
are dead: writing or fsyncing through them raises OSError (EIO), as a process that kept
running after its disk vanished would see; closing them is allowed.

Pure: no clock, no randomness (the caller passes ``keep_unsynced``), no real files.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

from .fs import TEMP_SUFFIX, FileSystem


class _Inode:
    __slots__ = ("data", "synced", "dead")

    def __init__(self, data: bytes = b"", synced: bytes = b"") -> None:
        self.data = bytearray(data)  # the page cache: what reads see
        self.synced = bytes(synced)  # what the last fsync made durable
        self.dead = False  # orphaned by a crash


def _dead(path) -> OSError:
    return OSError(errno.EIO, "file handle from before a crash", str(path))


class MemSegmentFile:
    """A ``SegmentFile`` over an in-memory file (same methods, no preallocation)."""

    __slots__ = ("path", "_inode", "_fs", "_closed")

    def __init__(self, path: Path, inode: _Inode, fs: MemFileSystem) -> None:
        self.path = path
        self._inode = inode
        self._fs = fs
        self._closed = False

    def _live(self) -> _Inode:
        inode = self._inode
        if inode.dead or self._closed:
            raise _dead(self.path) if inode.dead else ValueError("I/O on a closed file")
        return inode

    def size(self) -> int:
        return len(self._live().data)

    def release_preallocation(self, *, force: bool = False) -> None:
        pass  # nothing is ever reserved

    def write_at(self, position: int, data) -> None:
        buf = self._live().data
        data = bytes(data)
        if position > len(buf):
            buf.extend(bytes(position - len(buf)))  # a hole reads as zeros
        buf[position : position + len(data)] = data

    def write_parts_at(self, position: int, parts, total: int | None = None) -> None:
        self.write_at(position, b"".join(bytes(p) for p in parts))

    def read_at(self, position: int, size: int) -> bytes:
        return bytes(self._live().data[position : position + size])

    def truncate(self, size: int) -> None:
        buf = self._live().data
        if size < len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))

    def fsync(self) -> None:
        self._fs.fsync_inode(self.path, self._live())

    def close(self) -> None:
        self._closed = True


class MemFileSystem(FileSystem):
    """Files in memory; see the module docstring. Paths are compared as given (use the
    same directory ``Path`` for one log)."""

    def __init__(self) -> None:
        self._files: dict[str, _Inode] = {}  # the namespace as processes see it
        self._durable: dict[str, _Inode] = {}  # the namespace as of each dir's last fsync
        self._dirs: set[str] = set()
        self.fsyncs = 0  # count of file fsyncs (for tests and statistics)
        self.crashes = 0

    # ------------------------------------------------------------------------- the seam

    def open_segment(self, path: Path) -> MemSegmentFile:
        key = str(path)
        self._parent_must_exist(path)
        inode = self._files.get(key)
        if inode is None:
            inode = self._files[key] = _Inode()
        return MemSegmentFile(Path(path), inode, self)

    def fsync_inode(self, path, inode: _Inode) -> None:
        """Make ``inode``'s contents durable (subclass to inject a failing fsync)."""
        if inode.dead:
            raise _dead(path)
        inode.synced = bytes(inode.data)
        self.fsyncs += 1

    def fsync_fd(self, fd: int) -> None:  # pragma: no cover - there are no descriptors
        raise OSError(errno.EBADF, "MemFileSystem has no file descriptors")

    def preallocate(self, fd: int, offset: int, length: int) -> bool:
        return False

    def fsync_dir(self, directory: Path) -> None:
        d = str(directory)
        if d not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", d)
        for key in [k for k in self._durable if _parent(k) == d]:
            del self._durable[key]
        for key, inode in self._files.items():
            if _parent(key) == d:
                self._durable[key] = inode

    def makedirs(self, directory: Path) -> None:
        p = Path(directory)
        for d in (p, *p.parents):
            self._dirs.add(str(d))

    def listdir(self, directory: Path) -> list[str]:
        d = str(directory)
        if d not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", d)
        names = [Path(k).name for k in self._files if _parent(k) == d]
        names += [Path(k).name for k in self._dirs if k != d and _parent(k) == d]
        return sorted(names)

    def exists(self, path: Path) -> bool:
        key = str(path)
        return key in self._files or key in self._dirs

    def remove(self, path: Path) -> None:
        self._files.pop(str(path), None)

    def rename(self, src: Path, dst: Path) -> None:
        inode = self._files.pop(str(src), None)
        if inode is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(src))
        self._parent_must_exist(dst)
        self._files[str(dst)] = inode

    def read_bytes(self, path: Path) -> bytes | None:
        inode = self._files.get(str(path))
        return None if inode is None else bytes(inode.data)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Temp file, fsync, rename over ``path``, fsync the directory."""
        tmp = Path(path).with_name(Path(path).name + TEMP_SUFFIX)
        self._parent_must_exist(tmp)
        inode = self._files[str(tmp)] = _Inode(data)
        self.fsync_inode(tmp, inode)
        self.rename(tmp, Path(path))
        self.fsync_dir(Path(path).parent)

    # --------------------------------------------------------------------------- faults

    def crash(self, keep_unsynced: Callable[[str, int], int] | None = None) -> None:
        """Power loss: keep what was fsynced (files and directory entries); of the bytes
        appended after a file's synced content, keep ``keep_unsynced(path, pending)``
        (default none). Every handle open before is dead from now on."""
        survivors: dict[str, _Inode] = {}
        for key in sorted(self._durable):
            old = self._durable[key]
            content = old.synced
            pending = len(old.data) - len(content)
            if keep_unsynced is not None and pending > 0 and old.data.startswith(content):
                keep = max(0, min(pending, keep_unsynced(key, pending)))
                content = bytes(old.data[: len(content) + keep])
            survivors[key] = _Inode(content, content)
        for inode in self._files.values():
            inode.dead = True
        for inode in self._durable.values():
            inode.dead = True
        self._files = survivors
        self._durable = dict(survivors)
        self.crashes += 1

    def flip(self, path: Path, position: int, mask: int = 0x01) -> None:
        """Bit rot at rest: XOR the byte at ``position`` with ``mask`` in the page cache and
        on "disk" alike."""
        inode = self._files[str(path)]
        inode.data[position] ^= mask
        if position < len(inode.synced):
            synced = bytearray(inode.synced)
            synced[position] ^= mask
            inode.synced = bytes(synced)

    def size(self, path: Path) -> int:
        return len(self._files[str(path)].data)

    def unsynced_bytes(self, path: Path) -> int:
        """Bytes of ``path`` a crash would lose (0 if all of it was fsynced)."""
        inode = self._files[str(path)]
        if inode.data.startswith(inode.synced):
            return len(inode.data) - len(inode.synced)
        return len(inode.data)

    def _parent_must_exist(self, path) -> None:
        parent = str(Path(path).parent)
        if parent not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", parent)


def _parent(key: str) -> str:
    return str(Path(key).parent)
