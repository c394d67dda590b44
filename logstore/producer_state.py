"""Idempotent-producer state of one partition (Kafka's ProducerStateManager). Pure, no I/O.

Per producer id the leader keeps the producer epoch and the metadata of the last
``NUM_BATCHES_TO_RETAIN`` (5) batches it appended: (first_seq, last_seq, first_offset,
last_offset, timestamp). A new batch from an idempotent producer (producer_id >= 0) is checked
before it is appended (:meth:`ProducerStateManager.check`):

=================================================  ==========================================
situation                                          verdict
=================================================  ==========================================
same epoch, (first_seq, last_seq) equal to one of  ``duplicate``: the broker answers success
the retained batches                               with the *original* offsets, appends nothing
epoch older than the producer's                    ``INVALID_PRODUCER_EPOCH`` (a zombie)
epoch newer than the producer's, first_seq != 0    ``OUT_OF_ORDER_SEQUENCE_NUMBER``
same epoch, first_seq != last_seq + 1              ``OUT_OF_ORDER_SEQUENCE_NUMBER`` (a gap)
unknown producer id, first_seq == 0                accepted (a new producer or epoch)
unknown producer id, first_seq != 0                ``UNKNOWN_PRODUCER_ID``: its state expired
                                                   or was deleted with the log; the client
                                                   restarts with a new epoch at sequence 0
=================================================  ==========================================

Kafka (since 2.5) accepts any sequence from an unknown producer. Rillet does not, because
that lets a later in-flight batch land first when an earlier one was refused without being
written (NOT_ENOUGH_REPLICAS, then the ISR recovers): the earlier batch could then never be
written in order. The replication simulator found this; Kafka 0.11-2.4 answered
UNKNOWN_PRODUCER_ID the same way.

Sequences wrap: after 2**31 - 1 comes 0. After appending, the leader calls :meth:`update`
with the assigned offsets; followers and log recovery call :meth:`update_from_header` for
every replicated batch (no validation: the leader already did it).

Persistence: :meth:`snapshot` serialises the state as of ``map_end_offset`` (the offset after
the last batch applied) to bytes; the caller writes them atomically to a file named by that
offset (Kafka: ``<offset>.snapshot``) and passes the files' contents back to
:func:`rebuild_from_log`, which loads the latest snapshot at or below the log end and replays
the batch headers after it. After a log truncation call :meth:`truncate_to`; if it returns
False (a producer lost every retained batch, so its older state is unknown) reload with
:func:`rebuild_from_log` from the snapshots below the truncation offset (Kafka's
truncateAndReload), and delete the snapshot files above it.

Transactions (KIP-98): a transactional batch (attribute bit 4) opens a transaction for its
producer at the batch's first offset, unless one is open already; an end-transaction marker
(a control batch, logstore/txn_markers.py) closes it (:meth:`apply_marker`), returning a
:class:`CompletedTxn`. Open transactions and completed ones whose marker is not yet below the
high watermark (``unreplicated``) make the partition *unstable* from their first offset:
:meth:`first_unstable_offset`, the input of the last stable offset (logstore/transactions.py).
A producer with an open transaction never expires.

Snapshots (the bytes: producer_snapshot_format.py): format 2 (magic ``RPSV`` + version
byte 2) adds per producer the first offset of its open transaction, the coordinator epoch
of its last marker and that marker's offset; format 1 (magic ``RPS1``, before transactions)
still loads, with no transaction open.

Owned by the partition's single owner thread; not thread-safe.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rillet.frozen import frozen

from .errors import LogStoreError

NUM_BATCHES_TO_RETAIN = 5
MAX_SEQUENCE = 2**31 - 1
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
PRODUCER_ID_EXPIRATION_MS = 86_400_000  # producer.id.expiration.ms

NONE = "NONE"
OUT_OF_ORDER_SEQUENCE_NUMBER = "OUT_OF_ORDER_SEQUENCE_NUMBER"
INVALID_PRODUCER_EPOCH = "INVALID_PRODUCER_EPOCH"
UNKNOWN_PRODUCER_ID = "UNKNOWN_PRODUCER_ID"

INVALID_TXN_STATE = "INVALID_TXN_STATE"
TRANSACTION_COORDINATOR_FENCED = "TRANSACTION_COORDINATOR_FENCED"


class ProducerSnapshotError(LogStoreError):
    """A producer-state snapshot is truncated or corrupt; rebuild from the log instead."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"corrupt producer-state snapshot: {reason}")
        self.reason = reason


def increment_sequence(sequence: int, increment: int) -> int:
    """``sequence + increment`` wrapping after MAX_SEQUENCE to 0 (Kafka's incrementSequence)."""
    if sequence > MAX_SEQUENCE - increment:
        return increment - (MAX_SEQUENCE - sequence) - 1
    return sequence + increment


def in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == MAX_SEQUENCE)


@frozen
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@frozen
class CompletedTxn:
    """A transaction ended by the marker at ``last_offset``; it began at ``first_offset``.
    ``is_aborted`` is None when the marker's type was not known to the caller."""

    producer_id: int
    first_offset: int
    last_offset: int
    is_aborted: bool | None


@dataclass(slots=True)
class ProducerStateEntry:
    producer_id: int
    producer_epoch: int
    batches: deque = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    last_timestamp: int = -1
    current_txn_first_offset: int = -1  # first offset of its open transaction, -1: none
    coordinator_epoch: int = -1  # of the last marker applied (fences stale coordinators)
    last_marker_offset: int = -1  # offset of the last marker applied

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.producer_epoch:
            return None
        for b in self.batches:
            if b.first_seq == first_seq and b.last_seq == last_seq:
                return b
        return None


@frozen
class SequenceCheck:
    """The verdict on one batch. Append it only if ``should_append``."""

    error: str = NONE
    duplicate: BatchMetadata | None = None  # set: answer success with these offsets
    message: str = ""

    @property
    def should_append(self) -> bool:
        return self.error == NONE and self.duplicate is None


_OK = SequenceCheck()


class ProducerStateManager:
    """State of every idempotent producer of one partition, as of ``map_end_offset``."""

    def __init__(self, map_end_offset: int = 0) -> None:
        self.producers: dict[int, ProducerStateEntry] = {}
        self.map_end_offset = map_end_offset
        # Completed transactions whose marker may still be above the high watermark, in
        # marker order: the partition is unstable from their first offset until it is not.
        self.unreplicated: list[CompletedTxn] = []

    # ------------------------------------------------------------------------ transactions

    def ongoing_transactions(self) -> dict[int, int]:
        """producer id -> first offset of its open transaction."""
        return {
            pid: e.current_txn_first_offset
            for pid, e in self.producers.items()
            if e.current_txn_first_offset >= 0
        }

    def first_unstable_offset(self) -> int | None:
        """The smallest first offset of an open transaction or of a completed one whose
        marker is not yet known to be below the high watermark; None if there is none."""
        firsts = [t.first_offset for t in self.unreplicated]
        firsts.extend(
            e.current_txn_first_offset
            for e in self.producers.values()
            if e.current_txn_first_offset >= 0
        )
        return min(firsts) if firsts else None

    def on_high_watermark_updated(self, high_watermark: int) -> None:
        """Completed transactions whose marker is below ``high_watermark`` become stable."""
        if self.unreplicated and self.unreplicated[0].last_offset < high_watermark:
            self.unreplicated = [t for t in self.unreplicated if t.last_offset >= high_watermark]

    def check_transactional(self, header) -> SequenceCheck:
        """A non-transactional batch from a producer whose transaction is open is refused
        (Kafka's InvalidTxnStateException): it would land inside the transaction."""
        entry = self.producers.get(header.producer_id)
        if (
            entry is not None
            and not header.is_transactional
            and entry.current_txn_first_offset >= 0
            and header.producer_epoch == entry.producer_epoch
        ):
            return SequenceCheck(
                INVALID_TXN_STATE,
                None,
                f"producer {header.producer_id} has an open transaction: a "
                "non-transactional batch cannot be written inside it",
            )
        return _OK

    def check_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        *,
        transaction_version: int = 2,
    ) -> str:
        """The verdict on an end-transaction marker about to be written: a marker from an
        older producer epoch is a zombie's (INVALID_PRODUCER_EPOCH); one from an older
        coordinator epoch comes from a deposed coordinator (TRANSACTION_COORDINATOR_FENCED).

        KIP-890 part 2 (the only protocol rillet's coordinator speaks): every transaction end
        bumps the epoch, so the marker of a transaction carries an epoch strictly greater
        than its data, and the next transaction's data carries the marker's epoch. A marker
        whose epoch equals the producer's current epoch while a transaction is open here is
        therefore a late copy of the *previous* transaction's marker (a retried or delayed
        WriteTxnMarkers): written, it would close the open transaction with the previous
        one's outcome. INVALID_PRODUCER_EPOCH (Kafka's TV2 rule, KAFKA-19999). The same
        epoch with no transaction open is a harmless repeat (it completes nothing).

        ``transaction_version`` 1 (a Kafka client's transaction on the KAFKA listener, whose
        EndTxn bumps nothing): the marker carries the data's own epoch, so an equal epoch
        closes the open transaction, as in Kafka's TV1 (which has no defence against a late
        copy of the previous marker either; the coordinator epoch still fences a deposed
        coordinator)."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return NONE
        if producer_epoch < entry.producer_epoch:
            return INVALID_PRODUCER_EPOCH
        if (
            transaction_version >= 2
            and producer_epoch == entry.producer_epoch
            and entry.current_txn_first_offset >= 0
        ):
            return INVALID_PRODUCER_EPOCH
        if coordinator_epoch < entry.coordinator_epoch:
            return TRANSACTION_COORDINATOR_FENCED
        return NONE

    def apply_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
        offset: int,
        timestamp: int,
        is_aborted: bool | None,
    ) -> CompletedTxn | None:
        """Apply the marker written at ``offset``: the producer's open transaction (if any)
        is complete. A newer producer epoch replaces the old one (KIP-890 part 2 bumps the
        epoch at every transaction end) and forgets its sequences."""
        entry = self.producers.get(producer_id)
        if entry is None:
            entry = ProducerStateEntry(producer_id, producer_epoch)
            self.producers[producer_id] = entry
        elif producer_epoch != entry.producer_epoch:
            entry.producer_epoch = producer_epoch
            entry.batches.clear()
        first = entry.current_txn_first_offset
        entry.current_txn_first_offset = -1
        if coordinator_epoch >= 0:
            entry.coordinator_epoch = coordinator_epoch
        entry.last_marker_offset = offset
        entry.last_timestamp = max(entry.last_timestamp, timestamp)
        self.map_end_offset = max(self.map_end_offset, offset + 1)
        if first < 0:
            return None  # no data of this transaction here: nothing became stable
        done = CompletedTxn(producer_id, first, offset, is_aborted)
        self.unreplicated.append(done)
        return done

    def entry(self, producer_id: int) -> ProducerStateEntry | None:
        return self.producers.get(producer_id)

    # ------------------------------------------------------------------------ leader checks

    def check(
        self, producer_id: int, producer_epoch: int, base_sequence: int, last_offset_delta: int
    ) -> SequenceCheck:
        """Verdict for a batch about to be appended by the leader (see the module table)."""
        if producer_id < 0:
            return _OK  # not idempotent
        if base_sequence < 0 or producer_epoch < 0:
            return SequenceCheck(
                OUT_OF_ORDER_SEQUENCE_NUMBER, None, "idempotent batch without sequence"
            )
        entry = self.producers.get(producer_id)
        if entry is None:
            if base_sequence != 0:
                return SequenceCheck(
                    UNKNOWN_PRODUCER_ID,
                    None,
                    f"no state for producer {producer_id}: a new producer (or epoch) starts "
                    f"at sequence 0, got {base_sequence}",
                )
            return _OK
        last_seq = increment_sequence(base_sequence, last_offset_delta)
        if producer_epoch < entry.producer_epoch:
            return SequenceCheck(
                INVALID_PRODUCER_EPOCH,
                None,
                f"producer {producer_id} epoch {producer_epoch} is older than {entry.producer_epoch}",
            )
        dup = entry.find_duplicate(producer_epoch, base_sequence, last_seq)
        if dup is not None:
            return SequenceCheck(NONE, dup, "duplicate")
        if producer_epoch > entry.producer_epoch:
            if base_sequence != 0:
                return SequenceCheck(
                    OUT_OF_ORDER_SEQUENCE_NUMBER,
                    None,
                    f"invalid sequence number for new epoch {producer_epoch} of producer "
                    f"{producer_id}: {base_sequence} (must be 0)",
                )
            return _OK
        if entry.batches and not in_sequence(entry.last_seq, base_sequence):
            return SequenceCheck(
                OUT_OF_ORDER_SEQUENCE_NUMBER,
                None,
                f"out of order sequence for producer {producer_id}: {base_sequence} "
                f"(expected {increment_sequence(entry.last_seq, 1)})",
            )
        return _OK

    def check_batch(self, header) -> SequenceCheck:
        """:meth:`check` for a ``BatchHeader`` (before or after stamping)."""
        return self.check(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.last_offset_delta,
        )

    # ------------------------------------------------------------------------------ updates

    def update(
        self,
        producer_id: int,
        producer_epoch: int,
        first_seq: int,
        last_seq: int,
        first_offset: int,
        last_offset: int,
        timestamp: int,
        is_transactional: bool = False,
    ) -> None:
        """Record an appended batch (leader: after the append, with the assigned offsets).
        A transactional batch opens its producer's transaction at ``first_offset`` unless
        one is open."""
        if producer_id >= 0:
            entry = self.producers.get(producer_id)
            if entry is None:
                entry = ProducerStateEntry(producer_id, producer_epoch)
                self.producers[producer_id] = entry
            elif entry.producer_epoch != producer_epoch:
                # A new epoch: its sequences start over; an open transaction stays open
                # until its marker (Kafka's maybeUpdateProducerEpoch).
                entry.producer_epoch = producer_epoch
                entry.batches.clear()
                entry.last_timestamp = -1
            entry.batches.append(
                BatchMetadata(first_seq, last_seq, first_offset, last_offset, timestamp)
            )
            entry.last_timestamp = max(entry.last_timestamp, timestamp)
            if is_transactional and entry.current_txn_first_offset < 0:
                entry.current_txn_first_offset = first_offset
        self.map_end_offset = max(self.map_end_offset, last_offset + 1)

    def update_from_header(self, header, marker=None) -> CompletedTxn | None:
        """Apply a stamped batch header (replication, recovery, rebuild). Batches below
        ``map_end_offset`` are already applied and skipped. For a control batch pass its
        parsed ``marker`` (txn_markers.EndTxnMarker) so the coordinator epoch and the
        outcome are known; the completed transaction, if any, is returned."""
        if header.base_offset + header.last_offset_delta < self.map_end_offset:
            return None
        if header.is_control and header.producer_id >= 0:
            return self.apply_marker(
                header.producer_id,
                header.producer_epoch,
                marker.coordinator_epoch if marker is not None else -1,
                header.base_offset + header.last_offset_delta,
                header.max_timestamp,
                marker.is_abort if marker is not None else None,
            )
        if header.producer_id < 0 or header.base_sequence < 0:
            self.map_end_offset = header.base_offset + header.last_offset_delta + 1
            return None
        self.update(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            increment_sequence(header.base_sequence, header.last_offset_delta),
            header.base_offset,
            header.base_offset + header.last_offset_delta,
            header.max_timestamp,
            header.is_transactional,
        )
        return None

    def truncate_to(self, offset: int) -> bool:
        """Forget batches at or above ``offset`` (the log was truncated there). True if the
        result is exact; False if some producer lost all its retained batches, in which case
        reload with :func:`rebuild_from_log` from a snapshot below ``offset``."""
        exact = True
        if any(t.last_offset >= offset for t in self.unreplicated):
            exact = False
            self.unreplicated = [t for t in self.unreplicated if t.last_offset < offset]
        for pid in list(self.producers):
            entry = self.producers[pid]
            if entry.current_txn_first_offset >= offset:
                entry.current_txn_first_offset = -1  # it was not open before its first batch
            if entry.last_marker_offset >= offset:
                exact = False  # the transaction that marker closed is open again
            kept = [b for b in entry.batches if b.last_offset < offset]
            if len(kept) == len(entry.batches):
                continue
            if not kept:
                del self.producers[pid]
                exact = False
                continue
            # (an open transaction begins at one of the producer's batches, so one below
            # ``offset`` is kept or the entry is gone with its batches: exactness holds)
            entry.batches = deque(kept, maxlen=NUM_BATCHES_TO_RETAIN)
            entry.last_timestamp = kept[-1].timestamp
        self.map_end_offset = min(self.map_end_offset, offset)
        return exact

    def remove_expired(
        self, now_ms: int, expiration_ms: int = PRODUCER_ID_EXPIRATION_MS
    ) -> list[int]:
        """Drop producers whose last batch is older than ``producer.id.expiration.ms``."""
        gone = [
            p
            for p, e in self.producers.items()
            if now_ms - e.last_timestamp > expiration_ms and e.current_txn_first_offset < 0
        ]
        for p in gone:
            del self.producers[p]
        return gone

    # -------------------------------------------------------------------------- snapshots

    def snapshot(self) -> bytes:
        """The state as bytes (checksummed, format 2: producer_snapshot_format.py), valid
        at ``map_end_offset``."""
        from .producer_snapshot_format import encode

        return encode(self)

    @classmethod
    def load(cls, data: bytes) -> ProducerStateManager:
        """Inverse of :meth:`snapshot` (format 1 too); ``ProducerSnapshotError`` if short,
        corrupt or of an unknown version."""
        from .producer_snapshot_format import decode

        return decode(cls, data)


def rebuild(headers: Iterable, snapshot: bytes | None = None) -> ProducerStateManager:
    """State from an optional snapshot plus the stamped batch headers after it."""
    state = ProducerStateManager.load(snapshot) if snapshot is not None else ProducerStateManager()
    for header in headers:
        state.update_from_header(header)
    return state


def latest_snapshot(
    snapshots: Mapping[int, bytes], upto: int, log_start_offset: int = 0
) -> tuple[int, ProducerStateManager] | None:
    """The newest loadable snapshot with ``log_start_offset <= offset <= upto`` (corrupt ones
    are skipped, as Kafka skips unreadable snapshot files)."""
    for offset in sorted(snapshots, reverse=True):
        if offset > upto or offset < log_start_offset:
            continue
        try:
            return offset, ProducerStateManager.load(snapshots[offset])
        except ProducerSnapshotError:
            continue
    return None


def rebuild_from_log(
    log, snapshots: Mapping[int, bytes] | None = None, *, upto: int | None = None
) -> ProducerStateManager:
    """State of ``log`` (a ``PartitionLog``, or anything with ``log_start_offset``,
    ``log_end_offset`` and ``batch_headers(from_offset)``): the latest snapshot at or below
    ``upto`` (default: the log end offset) plus a replay of the batch headers after it."""
    end = log.log_end_offset if upto is None else upto
    found = latest_snapshot(snapshots or {}, end, log.log_start_offset)
    if found is None:
        state, start = ProducerStateManager(log.log_start_offset), log.log_start_offset
    else:
        start, state = found
    if start < log.log_end_offset:
        for header in log.batch_headers(start):
            if header.base_offset >= end:
                break
            marker = _marker_of(log, header) if header.is_control else None
            state.update_from_header(header, marker)
    return state


def _marker_of(log, header):
    from .txn_markers import read_marker  # (txn_markers imports batch, not this module)

    return read_marker(log, header) if hasattr(log, "read") else None
