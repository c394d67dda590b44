"""Group commit of log flushes: one ``syncfs(2)`` makes the appends of every partition on a
filesystem durable at once, instead of one ``fsync`` per segment file (issue #12).

With thousands of written partitions a broker issued thousands of fsyncs a second
(``flush.ms`` per partition); each forces its own journal commit, and a write to a page under
writeback waits for it, so appends and reads of every partition slowed down behind them.
Here the partition logs that are due to flush call ``barrier()``; the first caller runs one
``syncfs`` on the filesystem, and every caller whose writes were done before that call
started returns when it completes (callers that arrive while it runs need the next one). A
round of N partitions costs one journal commit and one writeback pass.

    group_sync.install()     # the broker, at start: FileSystem.group_barrier is set
    barrier(fd, log_dir)     # (the log store, after its writes) OSError if syncfs failed

``syncfs`` also flushes directory entries (a new segment file needs no directory fsync).
Where it is missing (not Linux/glibc) nothing is installed and logs fsync each file, as
they do in unit tests and with fault-injecting filesystems (logstore/log.py uses the barrier
only with the plain ``FileSystem``). The log store stays free of threads: this shell owns
them and hands the store a function.
"""

from __future__ import annotations

import ctypes
import os
import threading

_libc = None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _syncfs = _libc.syncfs
    _syncfs.argtypes = [ctypes.c_int]
    _syncfs.restype = ctypes.c_int
except (OSError, AttributeError):  # pragma: no cover - not Linux/glibc
    _syncfs = None

_by_device: dict[int, GroupSync] = {}
_by_log_dir: dict[str, GroupSync] = {}  # (an fstat per flush waited behind writeback)
_registry_lock = threading.Lock()


def barrier(fd: int, log_dir: str) -> None:
    """Group-sync the filesystem holding ``fd``, a file under ``log_dir`` (one GroupSync per
    device, looked up once per log dir)."""
    group = _by_log_dir.get(log_dir)
    if group is None:
        dev = os.fstat(fd).st_dev
        with _registry_lock:
            group = _by_device.get(dev)
            if group is None:
                group = _by_device[dev] = GroupSync()
            _by_log_dir[log_dir] = group
    group.barrier(fd)


def install(on: bool = True) -> bool:
    """Make plain-FileSystem log flushes in this process group syncs (where syncfs
    exists); ``on=False`` restores per-file fsyncs. True if installed."""
    from rillet.logstore.fs import FileSystem

    FileSystem.group_barrier = barrier if on and _syncfs is not None else None
    return FileSystem.group_barrier is not None


class GroupSync:
    def __init__(self, syncfs=None) -> None:
        self._syncfs = syncfs or _call_syncfs
        self._cond = threading.Condition()
        self._started = 0  # syncs started so far (the generation of the latest)
        self._done = 0  # the generation of the latest completed sync
        self._running = False
        self._failures: dict[int, OSError] = {}  # generation -> its error (recent ones)
        self.syncs = 0  # completed syncs (tests, counters)

    def barrier(self, fd: int) -> None:
        """Return once everything written before this call is durable (a syncfs that
        started after it completed); OSError if that syncfs failed."""
        with self._cond:
            need = self._started + 1  # a sync already running may have missed our writes
            while self._done < need:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._started += 1
                generation = self._started
                self._cond.release()
                error = None
                try:
                    self._syncfs(fd)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                self._running = False
                self._done = generation
                self.syncs += 1
                if error is not None:
                    self._failures[generation] = error
                    for old in [g for g in self._failures if g < generation - 64]:
                        del self._failures[old]
                self._cond.notify_all()
            # syncs run one at a time, so sync `need` is the one that covered our writes
            error = self._failures.get(need)
            if error is not None:
                raise error


def _call_syncfs(fd: int) -> None:
    if _syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")
