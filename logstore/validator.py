"""Appending a produce request's batches on the leader, with the idempotence checks (Kafka's
``LogValidator`` and ``UnifiedLog.analyzeAndValidateProducerState``).

``append_validated(log, producers, records, leader_epoch, now_ms)`` frames the request's
batches and checks each against the rules before anything is written:

- clients may not write control batches (INVALID_RECORD);
- a topic with ``cleanup.policy`` compact takes keyed records only (Kafka's INVALID_RECORD,
  "Compacted topic cannot accept message without key"): nothing of the request is written;
- a batch larger than the topic's ``max.message.bytes`` is refused (MESSAGE_TOO_LARGE);
- on a CreateTime topic with ``message.timestamp.before.max.ms`` / ``after.max.ms`` (or the
  older ``difference.max.ms``) set, a record timestamp that far from ``now_ms`` is refused
  (INVALID_TIMESTAMP, KIP-937);
- an idempotent batch is checked against the producer state (``ProducerStateManager``): a
  retry of one of the last 5 batches is a *duplicate* (answered with its original offsets,
  not written again); a gap, an old epoch or an unknown producer is refused with Kafka's
  error; a batch that follows the previous one of the same request (same producer, epoch,
  next sequence) needs no lookup.
- duplicates may only lead a request (a retried request, possibly with new batches after);
  a duplicate after a new batch is DUPLICATE_SEQUENCE_NUMBER.
- transactions (KIP-98 with KIP-890 part 1): a transactional batch needs a producer id, and
  is accepted only if ``verified(producer_id, producer_epoch)`` says the transaction
  coordinator has this partition in the producer's ongoing transaction (the caller asks the
  coordinator, or remembers its answer for the transaction); otherwise, or without a
  ``verified`` predicate, INVALID_TXN_STATE. This is the server-side defence against a
  hanging transaction: a late or stray transactional write cannot open a transaction the
  coordinator will never end. A non-transactional batch from a producer whose transaction
  is open here is INVALID_TXN_STATE too. Idempotent non-transactional batches of other
  producers are unaffected.

Before they are appended, the topic's ``message.timestamp.type=LogAppendTime`` and
``compression.type`` rewrite them (logstore/rewrite.py: each checked first, then stamped with
``now_ms`` and/or recompressed and signed again); the answer carries the append time
(``Appended.log_append_time``, -1 under CreateTime).

Then the new batches are appended (one batch: ``log.append``, which validates it; several:
``log.append_many``, all or nothing) and the producer state updated with the assigned
offsets. The verdict is a value (error *names*, "NONE" on success); errors of the log itself
(a failed disk, a corrupt batch) propagate as the log store's exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from . import batch as B
from . import producer_state as PS
from .config import LONG_MAX
from .log import PartitionLog
from .rewrite import Rewrite

OK = "NONE"


class Appended(NamedTuple):
    error: str  # "NONE" or a Kafka error name (the batches were refused; nothing written)
    message: str | None = None
    base_offset: int = -1
    last_offset: int = -1
    duplicate: PS.BatchMetadata | None = None  # the whole request was a retry of this batch
    log_append_time: int = -1  # the batches' stamp on a LogAppendTime topic (ms), else -1


def _refused(error: str, message: str) -> Appended:
    return Appended(error, message)


def has_keyless_record(batch, header: B.BatchHeader) -> bool:
    """Does the batch hold a record whose key is None? (Decodes its payload: only for
    compacted topics, as Kafka's LogValidator does; a malformed payload raises
    CorruptBatchError.)"""
    return any(k is None for k in B.decode_columns(batch, validate=False).keys)


def append_validated(
    log: PartitionLog,
    producers: PS.ProducerStateManager,
    records: bytes,
    leader_epoch: int,
    now_ms: int,
    verified: Callable[[int, int], bool] | None = None,
    *,
    require_keys: bool | None = None,
) -> Appended:
    """Validate and append ``records`` (one or more batches); see the module docstring.
    ``verified(producer_id, producer_epoch)``: is this partition part of that producer's
    ongoing transaction, as the transaction coordinator says (KIP-890)? ``require_keys``:
    refuse keyless records (default: the log is compacted)."""
    if not records:
        return _refused("CORRUPT_MESSAGE", "no record batch in the request")
    header = B.read_header(records)
    if header.length == len(records):
        # The common case, one batch: log.append validates it (digest, counts).
        views = [(header, memoryview(records))]
    else:
        # Several batches: framing now; log.append_many checks every digest before it
        # writes any (all or nothing), so each batch is hashed once.
        views = list(B.iter_batches(records, validate=False))
    dups: list[PS.BatchMetadata] = []  # leading duplicates: answered, not appended
    prev = None  # (producer id, epoch, last sequence) of the previous batch
    limit = log.config.max_message_bytes
    compacted = log.config.compact if require_keys is None else require_keys
    bounded = not log.config.log_append_time and (
        log.config.timestamp_before_max_ms != LONG_MAX
        or log.config.timestamp_after_max_ms != LONG_MAX)
    for i, (header, view) in enumerate(views):
        if header.is_control:
            return _refused("INVALID_RECORD", "clients may not write control batches")
        if compacted and header.length <= limit and has_keyless_record(view, header):
            return _refused("INVALID_RECORD", "Compacted topic cannot accept message without key")
        if header.length > limit:
            return _refused("MESSAGE_TOO_LARGE", f"batch of {header.length} bytes > {limit}")
        if bounded and (out := _timestamp_out_of_range(log.config, view, header, now_ms)):
            return _refused("INVALID_TIMESTAMP", out)
        pid = header.producer_id
        if header.is_transactional:
            if pid < 0:
                return _refused("INVALID_RECORD", "a transactional batch needs a producer id")
            if verified is None or not verified(pid, header.producer_epoch):
                return _refused(
                    "INVALID_TXN_STATE",
                    f"producer {pid} epoch {header.producer_epoch}: this partition is not "
                    "verified as part of its ongoing transaction",
                )
        if pid < 0:
            prev = None
            continue
        txn_check = producers.check_transactional(header)
        if not txn_check.should_append:
            return _refused(txn_check.error, txn_check.message)
        follows = (
            prev is not None
            and prev[:2] == (pid, header.producer_epoch)
            and header.base_sequence == PS.increment_sequence(prev[2], 1)
            and len(dups) < i
        )
        if not follows:
            check = producers.check_batch(header)
            if check.duplicate is not None:
                if len(dups) != i:
                    return _refused("DUPLICATE_SEQUENCE_NUMBER", "duplicate after new batches")
                dups.append(check.duplicate)
            elif not check.should_append:
                return _refused(check.error, check.message)
        last_seq = PS.increment_sequence(header.base_sequence, header.last_offset_delta)
        prev = (pid, header.producer_epoch, last_seq)
    if dups and len(dups) == len(views):
        return Appended(OK, None, dups[0].first_offset, dups[-1].last_offset, dups[-1])
    base = dups[0].first_offset if dups else -1
    last = -1
    todo = views[len(dups) :]
    rewrite = _rewrite_of(log.config)
    if rewrite.any or any(h.attributes & B.LOG_APPEND_TIME_FLAG for h, _ in todo):
        todo = []
        for header, view in views[len(dups):]:
            if rewrite.needed(header.attributes):
                B.validate_fields(view)  # never sign a corrupt batch again
                view = rewrite.apply(view, header, now_ms)
                header = B.read_header(view)
                if header.length > limit:
                    return _refused("MESSAGE_TOO_LARGE",
                                    f"batch of {header.length} bytes > {limit} (recompressed)")
            todo.append((header, view))
        records = todo[0][1] if len(views) == 1 else records
    if len(views) == 1:
        infos = [log.append(records, leader_epoch, now_ms)]
    else:  # one validation pass and one pwritev for the lot, no copies
        infos = log.append_many([view for _, view in todo], leader_epoch, now_ms)
    for i, ((header, _view), info) in enumerate(zip(todo, infos, strict=True)):
        if i == 0 and base < 0:
            base = info.base_offset
        last = info.last_offset
        if header.producer_id >= 0:
            producers.update(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                PS.increment_sequence(header.base_sequence, header.last_offset_delta),
                info.base_offset,
                info.last_offset,
                info.max_timestamp,
                header.is_transactional,
            )
        else:
            producers.map_end_offset = info.last_offset + 1
    return Appended(OK, None, base, last,
                    log_append_time=now_ms if rewrite.log_append_time else -1)


def _timestamp_out_of_range(config, batch, header: B.BatchHeader, now_ms: int) -> str | None:
    """KIP-937 on a CreateTime topic: the first record timestamp too far behind or ahead of
    the leader's clock, as a message (None: every record is within bounds). The batch's
    max_timestamp answers for "ahead"; "behind" needs the records (decoded only when a
    bound is set)."""
    after = config.timestamp_after_max_ms
    if header.max_timestamp - now_ms > after:
        return (f"timestamp {header.max_timestamp} is more than message.timestamp.after.max.ms"
                f"={after} ahead of the broker's clock {now_ms}")
    before = config.timestamp_before_max_ms
    if before != LONG_MAX:
        oldest = min(B.decode_columns(batch, validate=False).timestamps)
        if now_ms - oldest > before:
            return (f"timestamp {oldest} is more than message.timestamp.before.max.ms"
                    f"={before} behind the broker's clock {now_ms}")
    return None


_REWRITES: dict[tuple[str, str], Rewrite] = {}


def _rewrite_of(config) -> Rewrite:
    """The (immutable, shared) Rewrite of a log config: built once per pair of values."""
    key = (config.compression_type, config.message_timestamp_type)
    found = _REWRITES.get(key)
    if found is None:
        found = _REWRITES[key] = Rewrite(config)
    return found
