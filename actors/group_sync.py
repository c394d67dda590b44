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

**The interval flush needs no partition turn** (``FileSystem.group_sync``, issue #12): a log
in ``flush.mode=interval`` no longer wakes its partition to call ``barrier`` once per
``flush.ms``: that was a turn on the io lane per written partition per second (3,000 a second
at 3,000 partitions), each blocked until the next syncfs, and the io lane's threads drained
them a few per syncfs. Instead, when a log first holds unflushed writes it calls
``want(flush_ms)``; one flusher thread per filesystem runs the syncfs when the earliest
want is due (a want made before a sync started is served by it). The log notes, after each
write, how many syncs had started (``started``); once a later sync completed (``done``)
those writes are durable, and the log advances its recovery point the next time its owner
touches it (``PartitionLog._credit``: at its next append, or at its checkpoint a minute
later). A failed sync fails every log that had writes before it (``failed_after``).

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
import time

from loguru import logger

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


def for_log_dir(log_dir: str) -> GroupSync:
    """The GroupSync of the filesystem holding ``log_dir`` (one per device, looked up once
    per log dir; the flusher syncs through ``log_dir``)."""
    group = _by_log_dir.get(log_dir)
    if group is None:
        dev = os.stat(log_dir).st_dev
        with _registry_lock:
            group = _by_device.get(dev)
            if group is None:
                group = _by_device[dev] = GroupSync(path=log_dir)
            _by_log_dir[log_dir] = group
    return group


def barrier(fd: int, log_dir: str) -> None:
    """Group-sync the filesystem holding ``fd``, a file under ``log_dir``."""
    for_log_dir(log_dir).barrier(fd)


def install(on: bool = True) -> bool:
    """Make plain-FileSystem log flushes in this process group syncs (where syncfs
    exists), and interval flushes the flusher's (``FileSystem.group_sync``); ``on=False``
    restores per-file fsyncs on the owner's turn. True if installed."""
    from rillet.logstore.fs import FileSystem

    on = on and _syncfs is not None
    FileSystem.group_barrier = barrier if on else None
    FileSystem.group_sync = for_log_dir if on else None
    return on


class GroupSync:
    # a want's delay is capped (a flush.ms of Long.MAX_VALUE must not overflow a wait)
    MAX_DELAY_S = 3600.0

    def __init__(self, syncfs=None, path: str | None = None) -> None:
        self._syncfs = syncfs or _call_syncfs
        self._cond = threading.Condition()
        self._started = 0  # syncs started so far (the generation of the latest)
        self._done = 0  # the generation of the latest completed sync
        self._running = False
        # generation -> its error, every failed sync, ascending (failures are rare, and a
        # log crediting its writes late must still see the one after them: failed_after)
        self._failures: dict[int, OSError] = {}
        self.syncs = 0  # completed syncs (tests, counters)
        # the flusher (want): a directory on the filesystem to sync through, and when the
        # earliest wanted sync is due (monotonic s; None: nothing wanted)
        self._path = path
        self._want_cond = threading.Condition(threading.Lock())
        self._due: float | None = None
        self._flusher: threading.Thread | None = None

    @property
    def started(self) -> int:
        """Syncs started so far: a sync numbered above this starts after the call."""
        return self._started

    @property
    def done(self) -> int:
        """The number of the latest completed sync (they run one at a time, in order)."""
        return self._done

    def failed_after(self, started: int) -> OSError | None:
        """The error of a sync numbered above ``started`` and completed, if one failed: the
        writes made when ``started`` syncs had started may not be durable."""
        failures = self._failures
        if not failures or next(reversed(failures)) <= started:
            return None
        return next(e for generation, e in failures.items() if generation > started)

    def want(self, delay_ms: float) -> None:
        """Writes were made: sync within ``delay_ms`` (the flusher thread runs it; a sync
        that starts sooner serves this want too)."""
        due = time.monotonic() + min(delay_ms / 1000, self.MAX_DELAY_S)
        with self._want_cond:
            if self._due is not None and self._due <= due:
                return
            self._due = due
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_loop, name="log-flusher",
                                                 daemon=True)
                self._flusher.start()
            self._want_cond.notify()

    def _flush_loop(self) -> None:
        fd = None  # syncfs needs a file of the filesystem: the log dir, opened once
        while True:
            with self._want_cond:
                while True:
                    if self._due is None:
                        self._want_cond.wait()
                        continue
                    delay = self._due - time.monotonic()
                    if delay <= 0:
                        break
                    self._want_cond.wait(delay)
                self._due = None  # every want made so far is served by the sync below
            try:
                if fd is None:
                    try:
                        fd = os.open(self._path or ".", os.O_RDONLY)
                    except OSError as exc:  # no sync possible: the logs waiting on it fail
                        logger.error("log flusher: cannot open {}: {}", self._path, exc)
                        self._fail_round(exc)
                        continue
                self.barrier(fd)
            except OSError:
                pass  # recorded: each log with writes before it fails (failed_after)
            except Exception:  # noqa: BLE001 - the flusher must not die: nothing would sync
                logger.exception("log flusher: unexpected error")

    def _fail_round(self, error: OSError) -> None:
        """Count a sync that could not run as started and failed (failed_after reports it)."""
        with self._cond:
            while self._running:
                self._cond.wait()
            self._started += 1
            self._finish(self._started, error)

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
                self._finish(generation, error)
                self.syncs += 1
            # syncs run one at a time, so sync `need` is the one that covered our writes
            error = self._failures.get(need)
            if error is not None:
                raise error

    def _finish(self, generation: int, error: OSError | None) -> None:
        """Under the lock: sync ``generation`` is over (its error, if any, is recorded
        before ``done`` says so)."""
        if error is not None:
            self._failures[generation] = error
        self._done = generation
        self._cond.notify_all()


def _call_syncfs(fd: int) -> None:
    if _syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syncfs: {os.strerror(err)}")
