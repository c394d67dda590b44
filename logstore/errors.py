"""Typed errors of the log store.

Every error carries its fields and says whether retrying can help (``retriable``). The broker
maps them to wire error codes in one place (transport/protocol.py); the names follow Kafka's.
"""

from __future__ import annotations


class LogStoreError(Exception):
    """Base of every log-store error."""

    retriable: bool = False


class CorruptBatchError(LogStoreError):
    """A record batch failed validation (Kafka: CORRUPT_MESSAGE).

    ``position`` is the byte offset of the bad batch in the buffer or segment being read.
    """

    def __init__(self, reason: str, position: int = 0) -> None:
        super().__init__(f"corrupt record batch at byte {position}: {reason}")
        self.reason = reason
        self.position = position


class MissingCodecError(LogStoreError):
    """A compression codec is used whose optional package is not installed."""

    def __init__(self, codec: str, extra: str) -> None:
        super().__init__(
            f"compression codec {codec!r} needs an optional package: pip install rillet[{extra}]"
        )
        self.codec = codec
        self.extra = extra


class OffsetOutOfRangeError(LogStoreError):
    """An offset outside [log_start_offset, log_end_offset] (Kafka: OFFSET_OUT_OF_RANGE)."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(f"offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class UnexpectedOffsetError(LogStoreError):
    """A replicated batch does not start where the log ends (follower must truncate/refetch)."""

    retriable = True

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"replicated batch starts at offset {got}, expected {expected}")
        self.expected = expected
        self.got = got


class StaleLeaderEpochError(LogStoreError):
    """An append with a leader epoch older than the log's latest (Kafka: FENCED_LEADER_EPOCH)."""

    def __init__(self, epoch: int, latest_epoch: int) -> None:
        super().__init__(f"leader epoch {epoch} is older than the log's latest {latest_epoch}")
        self.epoch = epoch
        self.latest_epoch = latest_epoch


class RecordTooLargeError(LogStoreError):
    """A batch larger than max.message.bytes (Kafka: MESSAGE_TOO_LARGE)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"record batch of {size} bytes exceeds max.message.bytes={limit}")
        self.size = size
        self.limit = limit


class LogFailedError(LogStoreError):
    """The log hit an I/O failure (e.g. fsync) and refuses all further calls.

    After a failed fsync the page cache state is unknown, so the only safe recovery is to
    reopen the log from disk (a broker restart), never to retry the fsync and carry on.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class LogConfigError(LogStoreError, ValueError):
    """An invalid log configuration value (Kafka: INVALID_CONFIG)."""


class DamagedLogError(LogStoreError):
    """A read at or past a damaged batch (logstore/verify.py): the replica serves nothing
    from ``offset`` on until it has re-fetched it from a healthy replica (the wire error is
    KAFKA_STORAGE_ERROR, retriable: clients refresh metadata and find the new leader)."""

    retriable = True

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"replica damaged at offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason
