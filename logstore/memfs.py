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
    """Files in memory; see the module docstring. Paths are compared as strings (use the
    same directory ``Path`` for one log)."""

    def __init__(self) -> None:
        # directory -> name -> inode: the namespace as processes see it, and as of each
        # directory's last fsync (what a crash keeps)
        self._files: dict[str, dict[str, _Inode]] = {}
        self._durable: dict[str, dict[str, _Inode]] = {}
        self.fsyncs = 0  # count of file fsyncs (for tests and statistics)
        self.crashes = 0

    def _dir(self, path) -> tuple[dict[str, _Inode], str]:
        """(the entries of ``path``'s directory, its name); FileNotFoundError if the
        directory does not exist."""
        parent, _, name = str(path).rpartition("/")
        entries = self._files.get(parent or "/")
        if entries is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", parent)
        return entries, name

    def _lookup(self, path) -> _Inode | None:
        parent, _, name = str(path).rpartition("/")
        entries = self._files.get(parent or "/")
        return None if entries is None else entries.get(name)

    # ------------------------------------------------------------------------- the seam

    def open_segment(self, path: Path) -> MemSegmentFile:
        entries, name = self._dir(path)
        inode = entries.get(name)
        if inode is None:
            inode = entries[name] = _Inode()
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
        entries = self._files.get(d)
        if entries is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", d)
        self._durable[d] = dict(entries)

    def makedirs(self, directory: Path) -> None:
        p = Path(directory)
        for d in (str(p), *map(str, p.parents)):
            if d not in self._files:
                self._files[d] = {}
                self._durable[d] = {}

    def listdir(self, directory: Path) -> list[str]:
        d = str(directory)
        entries = self._files.get(d)
        if entries is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", d)
        prefix = d.rstrip("/") + "/"
        subdirs = [k[len(prefix) :] for k in self._files if k.startswith(prefix)]
        return sorted([*entries, *(s for s in subdirs if "/" not in s)])

    def exists(self, path: Path) -> bool:
        key = str(path)
        return key in self._files or self._lookup(key) is not None

    def remove(self, path: Path) -> None:
        parent, _, name = str(path).rpartition("/")
        entries = self._files.get(parent or "/")
        if entries is not None:
            entries.pop(name, None)

    def rename(self, src: Path, dst: Path) -> None:
        entries, name = self._dir(src)
        if name not in entries:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(src))
        target, new = self._dir(dst)
        target[new] = entries.pop(name)

    def read_bytes(self, path: Path) -> bytes | None:
        inode = self._lookup(path)
        return None if inode is None else bytes(inode.data)

    def write_atomic(self, path: Path, data: bytes, *, durable: bool = True) -> None:
        """Temp file, fsync, rename over ``path``, fsync the directory. ``durable=False``:
        written in place with no fsync, so a crash keeps the old content, or an empty file
        if it was new and a later directory fsync made its entry durable."""
        entries, name = self._dir(path)
        if not durable:  # in place, as the real one: the synced content stays the old one
            inode = entries.get(name)
            if inode is None:
                entries[name] = _Inode(data)
            else:
                inode.data[:] = data
            return
        inode = entries[name + TEMP_SUFFIX] = _Inode(data)
        self.fsync_inode(path, inode)
        entries[name] = entries.pop(name + TEMP_SUFFIX)
        self.fsync_dir(str(path).rpartition("/")[0] or "/")

    # --------------------------------------------------------------------------- faults

    def crash(self, keep_unsynced: Callable[[str, int], int] | None = None) -> None:
        """Power loss: keep what was fsynced (files and directory entries); of the bytes
        appended after a file's synced content, keep ``keep_unsynced(path, pending)``
        (default none). Every handle open before is dead from now on."""
        survivors: dict[str, dict[str, _Inode]] = {}
        for d in sorted(self._durable):
            kept = survivors[d] = {}
            for name in sorted(self._durable[d]):
                old = self._durable[d][name]
                content = old.synced
                pending = len(old.data) - len(content)
                if keep_unsynced is not None and pending > 0 and old.data.startswith(content):
                    path = f"{d.rstrip('/')}/{name}"
                    keep = max(0, min(pending, keep_unsynced(path, pending)))
                    content = bytes(old.data[: len(content) + keep])
                kept[name] = _Inode(content, content)
        for namespace in (self._files, self._durable):
            for entries in namespace.values():
                for inode in entries.values():
                    inode.dead = True
        self._files = survivors
        self._durable = {d: dict(entries) for d, entries in survivors.items()}
        self.crashes += 1

    def flip(self, path: Path, position: int, mask: int = 0x01) -> None:
        """Bit rot at rest: XOR the byte at ``position`` with ``mask`` in the page cache and
        on "disk" alike."""
        inode = self._lookup(path)
        if inode is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
        inode.data[position] ^= mask
        if position < len(inode.synced):
            synced = bytearray(inode.synced)
            synced[position] ^= mask
            inode.synced = bytes(synced)

    def size(self, path: Path) -> int:
        return len(self._lookup(path).data)

    def unsynced_bytes(self, path: Path) -> int:
        """Bytes of ``path`` a crash would lose (0 if all of it was fsynced)."""
        inode = self._lookup(path)
        if inode.data.startswith(inode.synced):
            return len(inode.data) - len(inode.synced)
        return len(inode.data)
