"""The messages a ``PartitionReplica`` handles (see actors/partition.py) and the mapping of
log-store errors and pure-core error names to wire codes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rillet.coordinator import replication as RC
from rillet.logstore.config import LogConfig
from rillet.logstore.errors import (
    CorruptBatchError,
    DamagedLogError,
    LogFailedError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from rillet.transport import protocol as P

from rillet.frozen import frozen

E = P.ErrorCode


code_of = P.code_of  # wire code for an error name of the pure cores


@frozen
class Append:
    records: bytes
    reply: Callable[[P.ProducePartitionResponse], None] | None  # None: acks=0
    acks: int = 1
    timeout_ms: int = 30_000
    # transactional batches (docs/transactions.md): a client's produce names its
    # transactional id, and the leader verifies the partition is in the producer's ongoing
    # transaction with its coordinator (KIP-890 part 1); an internal writer that checked the
    # transaction itself (the group coordinator's TxnOffsetCommit) sets ``verified``
    transactional_id: str | None = None
    verified: bool = False


@frozen
class WriteMarker:
    """Leader: append a COMMIT (``committed``) or ABORT marker for ``producer_id`` at
    ``producer_epoch`` (WriteTxnMarkers). ``reply(error_code)`` once the marker is replicated
    to the ISR (acks=all) or refused."""

    producer_id: int
    producer_epoch: int
    committed: bool
    coordinator_epoch: int
    reply: Callable[[int], None]
    transaction_version: int = 2  # 1: ends a transaction of this same epoch (Kafka clients)


@frozen
class Read:
    fetch_offset: int
    max_bytes: int
    reply: Callable[[P.FetchPartitionResponse], None]
    on_data: Callable[[P.FetchPartitionResponse], bool] | None  # set: park if nothing to read
    deadline_ms: int = 0
    replica_id: int = -1  # >= 0: a follower's fetch (reads up to the LEO, moves the ISR/HW)
    current_leader_epoch: int = -1
    replica_incarnation: str = ""  # the follower's process (KIP-903)
    last_fetched_epoch: int = -1  # a follower's last batch epoch (KIP-320 divergence check)
    # a follower's fetch session (fetch_session.Watch): keep watching for it after answering
    watch: object | None = None
    isolation_level: int = P.READ_UNCOMMITTED  # READ_COMMITTED: up to the LSO, aborted list


@frozen
class PartitionChanged:
    """The metadata image has this state for the partition (``metadata.PartitionInfo``)."""

    info: object
    min_insync_replicas: int = 1


@frozen
class EpochEndOffset:
    """OffsetForLeaderEpoch on the leader: reply(P.EpochEndOffset)."""

    current_leader_epoch: int
    leader_epoch: int
    reply: Callable[[P.EpochEndOffset], None]


@frozen
class AlterPartitionAnswer:
    proposal: RC.AlterIsr
    error: str


@frozen
class Scrub:
    """Check up to ``max_bytes`` more of the log (PartitionLog.scrub); ``restart`` plans a
    new pass first. reply(ScrubReport) on this actor's thread."""

    max_bytes: int
    restart: bool
    reply: Callable[[ScrubReport], None]


@frozen
class ScrubReport:
    bytes_checked: int
    pass_done: bool
    unverified_bytes: int
    damaged: bool


@frozen
class DamageAnswer:
    """The controller's answer to this replica's ReplicaDamage report (error name)."""

    offset: int
    error: str


@frozen
class FollowerState:
    """ask: (log_end_offset, latest_epoch, high_watermark), or None if not a follower."""

    leader_epoch: int


@frozen
class FollowerTruncate:
    """ask: apply the leader's OffsetForLeaderEpoch answer; returns (done, LEO, latest
    epoch) or None if not a follower of ``leader_epoch``."""

    leader_epoch: int
    epoch: int
    end_offset: int


@frozen
class FollowerAppend:
    """ask: append fetched batches (at our LEO); returns the new LEO (None: not a follower
    of ``leader_epoch``)."""

    leader_epoch: int
    records: bytes
    high_watermark: int
    log_start_offset: int = -1  # the leader's (DeleteRecords, retention): followed


@frozen
class FollowerReset:
    """ask: our LEO is below the leader's log start: start over empty at ``offset``."""

    leader_epoch: int
    offset: int


@frozen
class ListOffset:
    timestamp: int
    reply: Callable[[P.ListOffsetsPartitionResponse], None]
    isolation_level: int = P.READ_UNCOMMITTED  # READ_COMMITTED: LATEST is the LSO


@frozen
class Tick:
    now_ms: int


@frozen
class Housekeep:
    now_ms: int


@frozen
class ExpireProducers:
    """Forget idempotent producers idle past ``producer.id.expiration.ms``."""

    now_ms: int


@frozen
class Reconfigure:
    config: LogConfig


@frozen
class LeaderEpoch:
    """The controller moved leadership: batches appended from now on carry ``leader_epoch``."""

    leader_epoch: int


@frozen
class Delete:
    """The topic is gone; ``directory`` is where the node renamed the partition's dir to (None:
    there was none to rename, the replica had not prepared it yet)."""

    directory: Path | None


class DirectoryClaim:
    """A replica's right to its directory (``<topic>-<partition>``), shared with the node. The
    node sets ``deleted`` and renames the directory aside under ``lock``; the replica creates
    the directory and writes its topic id under the same lock, only while ``deleted`` is unset
    (a replica of the name created later gets its claim only after that rename, so one lock
    per claim is enough).
    Without it, a replica whose start was still queued when its topic was deleted made the
    directory again after the node found none to rename, and with the topic created again
    meanwhile, the two replicas of the name removed each other's directory (a live log left
    writing to unlinked files). The broker-wide high watermark table is keyed by name too: a
    deleted replica no longer writes its entry, and the node drops it under the same lock."""

    __slots__ = ("deleted", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deleted = False


@dataclass(slots=True)
class _Waiter:
    fetch_offset: int
    max_bytes: int
    on_data: Callable[[P.FetchPartitionResponse], bool]
    deadline_ms: int
    follower: bool = False
    isolation_level: int = P.READ_UNCOMMITTED


@dataclass(slots=True)
class _Watched:
    """A follower's session watching this leader partition (actors/fetch_session.py): what
    it was sent (records up to ``sent_until``, ``hw_sent``) since it last fetched at
    ``fetch_offset``."""

    watch: object  # fetch_session.Watch
    fetch_offset: int
    sent_until: int
    hw_sent: int
    max_bytes: int
    leader_epoch: int
    incarnation: str
    start_sent: int = -1  # the log start offset it was last told (DeleteRecords)


def error_code_for(exc: BaseException) -> int:
    """The wire code for a log-store error (one place, as STYLE.md asks)."""
    if isinstance(exc, RecordTooLargeError):
        return E.MESSAGE_TOO_LARGE
    if isinstance(exc, DamagedLogError):  # retriable: clients find the next leader
        return E.KAFKA_STORAGE_ERROR
    if isinstance(exc, CorruptBatchError):
        return E.CORRUPT_MESSAGE
    if isinstance(exc, OffsetOutOfRangeError):
        return E.OFFSET_OUT_OF_RANGE
    if isinstance(exc, LogFailedError):
        return E.KAFKA_STORAGE_ERROR
    return E.UNKNOWN_SERVER_ERROR
