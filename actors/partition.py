"""PartitionReplica: the actor that owns one partition's ``PartitionLog``.

Only this actor's thread touches the log. Messages (``tell`` only; replies go to callbacks):

* ``Append``    validate the produced batches, append, answer with the base offset;
                with ``flush.mode=group-commit`` the answers wait for one fsync covering every
                append that was in the mailbox
* ``Read``      answer immediately; if empty and the fetch may wait, park a waiter that is
                served on the next append (the long poll; see gather.FetchGather)
* ``ListOffset`` earliest / latest / by timestamp
* ``Tick``      interval flush, expiry of parked waiters
* ``Housekeep`` retention and compaction (log.retention.check.interval.ms)
* ``Reconfigure`` reopen the log with a new LogConfig (AlterConfigs)
* ``Delete``    close the log, remove its directory, stop

With one replica the high watermark is the log end offset; the seam for replication is
``_advance_high_watermark``. Any exception while handling a message is answered with an error
code and logged; it never stops the actor.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pykka
from loguru import logger
from rillet.logstore import batch as B
from rillet.logstore.config import LogConfig
from rillet.logstore.errors import (
    CorruptBatchError,
    LogFailedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from rillet.logstore.log import PartitionLog
from rillet.transport import protocol as P

from .ticker import now_ms

E = P.ErrorCode
TOPIC_ID_FILE = "partition.metadata"


@dataclass(frozen=True, slots=True)
class Append:
    records: bytes
    reply: Callable[[P.ProducePartitionResponse], None] | None  # None: acks=0


@dataclass(frozen=True, slots=True)
class Read:
    fetch_offset: int
    max_bytes: int
    reply: Callable[[P.FetchPartitionResponse], None]
    on_data: Callable[[P.FetchPartitionResponse], bool] | None  # set: park if nothing to read
    deadline_ms: int = 0


@dataclass(frozen=True, slots=True)
class ListOffset:
    timestamp: int
    reply: Callable[[P.ListOffsetsPartitionResponse], None]


@dataclass(frozen=True, slots=True)
class Tick:
    now_ms: int


@dataclass(frozen=True, slots=True)
class Housekeep:
    now_ms: int


@dataclass(frozen=True, slots=True)
class Reconfigure:
    config: LogConfig


@dataclass(frozen=True, slots=True)
class LeaderEpoch:
    """The controller moved leadership: batches appended from now on carry ``leader_epoch``."""

    leader_epoch: int


@dataclass(frozen=True, slots=True)
class Delete:
    """The topic is gone; ``directory`` is where the node renamed the partition's dir to."""

    directory: Path


@dataclass(slots=True)
class _Waiter:
    fetch_offset: int
    max_bytes: int
    on_data: Callable[[P.FetchPartitionResponse], bool]
    deadline_ms: int


def error_code_for(exc: BaseException) -> int:
    """The wire code for a log-store error (one place, as STYLE.md asks)."""
    if isinstance(exc, RecordTooLargeError):
        return E.MESSAGE_TOO_LARGE
    if isinstance(exc, CorruptBatchError):
        return E.CORRUPT_MESSAGE
    if isinstance(exc, OffsetOutOfRangeError):
        return E.OFFSET_OUT_OF_RANGE
    if isinstance(exc, LogFailedError):
        return E.KAFKA_STORAGE_ERROR
    return E.UNKNOWN_SERVER_ERROR


class PartitionReplica(pykka.ThreadingActor):
    """Owns ``directory``'s log for ``topic``-``partition``. See the module docstring."""

    def __init__(
        self,
        topic: str,
        partition: int,
        directory: Path,
        config: LogConfig,
        leader_epoch: int,
        broker_id: int,
        topic_id: str = "",
    ) -> None:
        super().__init__()
        self.topic = topic
        self.partition = partition
        self.directory = Path(directory)
        self.config = config
        self.leader_epoch = leader_epoch
        self.topic_id = topic_id
        self.log: PartitionLog | None = None
        self.high_watermark = 0
        self._waiters: list[_Waiter] = []
        self._unacked: list[tuple[Callable, P.ProducePartitionResponse]] = []
        self._log = logger.bind(broker=broker_id, topic=topic, partition=partition)

    # -------------------------------------------------------------------------- lifecycle

    def on_start(self) -> None:
        marker = self.directory / TOPIC_ID_FILE
        try:
            if marker.exists() and marker.read_text().strip() != self.topic_id:
                # Left over from a deleted topic of the same name: never serve its records.
                self._log.warning("removing data of an older topic with the same name")
                shutil.rmtree(self.directory)
            if not marker.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                marker.write_text(self.topic_id + "\n")
        except OSError as e:
            self._log.error("cannot prepare {}: {}", self.directory, e)
        self._open()

    def _open(self) -> None:
        try:
            self.log = PartitionLog.open(self.directory, self.config, now_ms())
        except Exception as e:  # noqa: BLE001 - a broken log must not take the broker down
            self.log = None
            self._log.error("cannot open log {}: {}", self.directory, e)
            return
        self._advance_high_watermark()
        self._log.info(
            "partition online: log_start_offset={} log_end_offset={}",
            self.log.log_start_offset,
            self.log.log_end_offset,
        )

    def on_stop(self) -> None:
        self._release_unacked()
        if self.log is not None:
            try:
                self.log.close()
                self._log.info("partition closed cleanly at {}", self.high_watermark)
            except Exception as e:  # noqa: BLE001
                self._log.error("close failed: {}", e)
            self.log = None

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self._log.opt(exception=(exception_type, exception_value, traceback)).error(
            "partition actor failed"
        )

    def _advance_high_watermark(self) -> None:
        # One replica: everything appended is "replicated". Replication changes this to the
        # smallest log end offset in the ISR.
        if self.log is not None:
            self.high_watermark = self.log.log_end_offset

    # ---------------------------------------------------------------------------- dispatch

    def on_receive(self, message: object) -> None:
        try:
            match message:
                case Append():
                    self._append(message)
                case Read():
                    self._read(message)
                case ListOffset():
                    self._list_offset(message)
                case Tick(now_ms=now):
                    self._tick(now)
                case Housekeep(now_ms=now):
                    self._housekeep(now)
                case Reconfigure(config=config):
                    self._reconfigure(config)
                case Delete(directory=directory):
                    self._delete(directory)
                case LeaderEpoch(leader_epoch=epoch):
                    self.leader_epoch = max(self.leader_epoch, epoch)
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception:  # noqa: BLE001 - poison message: answer (if we can) and carry on
            self._log.exception("failed handling {}", type(message).__name__)
            self._answer_error(message, E.UNKNOWN_SERVER_ERROR)
        if self._unacked and self.actor_inbox.empty():
            self._group_commit()

    def _answer_error(self, message: object, code: int) -> None:
        try:
            if isinstance(message, Append) and message.reply:
                message.reply(P.ProducePartitionResponse(partition=self.partition, error_code=code))
            elif isinstance(message, Read):
                message.reply(P.FetchPartitionResponse(partition=self.partition, error_code=code))
            elif isinstance(message, ListOffset):
                message.reply(
                    P.ListOffsetsPartitionResponse(partition=self.partition, error_code=code)
                )
        except Exception:  # noqa: BLE001
            self._log.exception("could not answer a failed message")

    # ----------------------------------------------------------------------------- produce

    def _append(self, msg: Append) -> None:
        log = self.log
        if log is None:
            code, message, base = E.KAFKA_STORAGE_ERROR, "partition log is offline", -1
        else:
            code, message, base = self._append_batches(log, msg.records)
        if code == E.NONE:
            self._advance_high_watermark()
            self._serve_waiters()
        if msg.reply is None:
            return
        response = P.ProducePartitionResponse(
            partition=self.partition,
            error_code=code,
            base_offset=base,
            log_start_offset=log.log_start_offset if log is not None and code == E.NONE else -1,
            error_message=message,
        )
        if code == E.NONE and self.config.flush_mode == "group-commit":
            self._unacked.append((msg.reply, response))
        else:
            msg.reply(response)

    def _append_batches(self, log: PartitionLog, records: bytes) -> tuple[int, str | None, int]:
        if not records:
            return E.CORRUPT_MESSAGE, "no record batch in the request", -1
        try:
            header = B.read_header(records)
            if header.length == len(records):
                # The common case, one batch: log.append validates it (digest, counts).
                views = [(header, memoryview(records))]
            else:
                # Several batches: validate all before appending any (all or nothing).
                views = list(B.iter_batches(records, validate=True))
        except CorruptBatchError as e:
            return E.CORRUPT_MESSAGE, str(e), -1
        for header, _view in views:
            if header.is_control:
                return E.INVALID_RECORD, "clients may not write control batches", -1
            if header.length > log.config.max_message_bytes:
                limit = log.config.max_message_bytes
                return E.MESSAGE_TOO_LARGE, f"batch of {header.length} bytes > {limit}", -1
        base = -1
        now = now_ms()
        try:
            for i, (_, view) in enumerate(views):
                data = records if len(views) == 1 else bytes(view)
                info = log.append(data, self.leader_epoch, now)
                if i == 0:
                    base = info.base_offset
        except Exception as e:  # noqa: BLE001 - mapped to a code; a failed log stays failed
            code = error_code_for(e)
            if code == E.KAFKA_STORAGE_ERROR:
                self._log.error("log failed on append: {}", e)
            return code, str(e), -1
        return E.NONE, None, base

    def _group_commit(self) -> None:
        try:
            if self.log is not None:
                self.log.flush()
        except Exception as e:  # noqa: BLE001
            self._log.error("group commit fsync failed: {}", e)
            failed = [
                (
                    reply,
                    P.ProducePartitionResponse(
                        partition=self.partition,
                        error_code=E.KAFKA_STORAGE_ERROR,
                        error_message=str(e),
                    ),
                )
                for reply, _ in self._unacked
            ]
            self._unacked = failed
        self._release_unacked()

    def _release_unacked(self) -> None:
        unacked, self._unacked = self._unacked, []
        for reply, response in unacked:
            try:
                reply(response)
            except Exception:  # noqa: BLE001
                self._log.exception("produce reply failed")

    # ------------------------------------------------------------------------------- fetch

    def _fetch_response(self, fetch_offset: int, max_bytes: int) -> P.FetchPartitionResponse:
        log = self.log
        if log is None:
            return P.FetchPartitionResponse(
                partition=self.partition, error_code=E.KAFKA_STORAGE_ERROR
            )
        try:
            records = log.read(fetch_offset, max(max_bytes, 1), self.high_watermark)
            code = E.NONE
        except Exception as e:  # noqa: BLE001
            records, code = b"", error_code_for(e)
        return P.FetchPartitionResponse(
            partition=self.partition,
            error_code=code,
            high_watermark=self.high_watermark,
            last_stable_offset=self.high_watermark,
            log_start_offset=log.log_start_offset,
            records=records,
        )

    def _read(self, msg: Read) -> None:
        response = self._fetch_response(msg.fetch_offset, msg.max_bytes)
        msg.reply(response)
        if msg.on_data is not None and response.error_code == E.NONE and not response.records:
            self._waiters.append(
                _Waiter(msg.fetch_offset, msg.max_bytes, msg.on_data, msg.deadline_ms)
            )

    def _serve_waiters(self) -> None:
        if not self._waiters:
            return
        keep = []
        for w in self._waiters:
            response = self._fetch_response(w.fetch_offset, w.max_bytes)
            if response.records or response.error_code != E.NONE:
                try:
                    w.on_data(response)
                except Exception:  # noqa: BLE001
                    self._log.exception("fetch waiter failed")
            else:
                keep.append(w)
        self._waiters = keep

    # ------------------------------------------------------------------------ list offsets

    def _list_offset(self, msg: ListOffset) -> None:
        log = self.log
        if log is None:
            code = E.KAFKA_STORAGE_ERROR
            msg.reply(P.ListOffsetsPartitionResponse(partition=self.partition, error_code=code))
            return
        ts = msg.timestamp
        if ts == P.EARLIEST_TIMESTAMP:
            offset = log.log_start_offset
        elif ts == P.LATEST_TIMESTAMP:
            offset = self.high_watermark
        elif ts < 0:
            msg.reply(
                P.ListOffsetsPartitionResponse(
                    partition=self.partition, error_code=E.INVALID_REQUEST
                )
            )
            return
        else:
            found = log.offset_for_timestamp(ts)
            offset = -1 if found is None or found >= self.high_watermark else found
        msg.reply(
            P.ListOffsetsPartitionResponse(
                partition=self.partition,
                timestamp=ts if ts >= 0 and offset >= 0 else -1,
                offset=offset,
                leader_epoch=self.leader_epoch,
            )
        )

    # ------------------------------------------------------------------------ housekeeping

    def _tick(self, now: int) -> None:
        if self._waiters:
            self._waiters = [w for w in self._waiters if w.deadline_ms > now]
        if self.log is not None and self.log.unflushed:
            try:
                self.log.maybe_flush(now)
            except Exception as e:  # noqa: BLE001
                self._log.error("flush failed: {}", e)

    def _housekeep(self, now: int) -> None:
        log = self.log
        if log is None:
            return
        deleted = log.delete_old_segments(now)
        if deleted:
            self._log.info(
                "retention deleted {} segment(s); log_start_offset={}",
                deleted,
                log.log_start_offset,
            )
        if log.config.compact:
            stats = log.compact(now)
            self._log.debug("compaction: {}", stats)

    def _reconfigure(self, config: LogConfig) -> None:
        if config == self.config:
            return
        if self._unacked:
            self._group_commit()
        if self.log is not None:
            self.log.close()
        self.config = config
        self._log.info("config changed; reopening log")
        self._open()
        self._serve_waiters()

    def _delete(self, directory: Path) -> None:
        self._release_unacked()
        if self.log is not None:
            self.log.abandon()  # no more writes: the path may already hold a new topic
            self.log = None
        shutil.rmtree(directory, ignore_errors=True)
        self._log.info("partition deleted")
        self.stop()
