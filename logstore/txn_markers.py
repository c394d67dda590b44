"""End-transaction markers: the control batches that commit or abort a transaction.

A marker is a batch with the transactional (bit 4) and control (bit 5) attribute bits set,
the producer id and epoch of the transaction it ends, base sequence -1, and one record in
Kafka's format::

    key   = version int16 (0) + type int16      type: 0 = ABORT, 1 = COMMIT
    value = version int16 (0) + coordinator_epoch int32

Only the broker writes markers (``transactions.append_marker``, on the transaction
coordinator's request); the validator refuses control batches from clients. Readers skip
control batches: they never reach an application.
"""

from __future__ import annotations

import enum
import struct

from rillet.frozen import frozen

from . import batch as B
from .errors import CorruptBatchError

_KEY = struct.Struct(">hh")
_VALUE = struct.Struct(">hi")
CONTROL_VERSION = 0


class ControlType(enum.IntEnum):
    """The type of a control record (Kafka's ControlRecordType)."""

    ABORT = 0
    COMMIT = 1


@frozen
class EndTxnMarker:
    """What one marker batch says: which producer's transaction ends, and how."""

    producer_id: int
    producer_epoch: int
    control_type: ControlType
    coordinator_epoch: int
    # 2: KIP-890 part 2 (the epoch was bumped at the end); 1: the transaction's own epoch
    # (a Kafka client's transaction). Not written in the batch: it only says how to check it.
    transaction_version: int = 2

    @property
    def is_abort(self) -> bool:
        return self.control_type is ControlType.ABORT


def marker_key(control_type: ControlType) -> bytes:
    return _KEY.pack(CONTROL_VERSION, int(control_type))


def marker_value(coordinator_epoch: int) -> bytes:
    return _VALUE.pack(CONTROL_VERSION, coordinator_epoch)


def build_marker_batch(marker: EndTxnMarker, timestamp_ms: int) -> bytes:
    """The unstamped control batch for ``marker`` (the log stamps offset and leader epoch)."""
    if marker.producer_id < 0 or marker.producer_epoch < 0:
        raise ValueError(f"a marker needs a producer id and epoch, got {marker}")
    b = B.BatchBuilder(
        producer_id=marker.producer_id,
        producer_epoch=marker.producer_epoch,
        base_sequence=-1,
        is_transactional=True,
        is_control=True,
    )
    b.append(timestamp_ms, marker_key(marker.control_type), marker_value(marker.coordinator_epoch))
    return b.build()


def parse_marker(header: B.BatchHeader, batch) -> EndTxnMarker:
    """The marker in the control batch ``batch`` (whose header is ``header``).

    CorruptBatchError if it is not a control batch with exactly one well-formed marker record
    (a known version and type): such a batch can only come from a bug or a damaged disk.
    """
    if not header.is_control:
        raise CorruptBatchError("not a control batch", 0)
    cols = B.decode_columns(batch, validate=False)
    if len(cols.keys) != 1:
        raise CorruptBatchError(f"a marker batch holds 1 record, not {len(cols.keys)}", 0)
    key, value = cols.keys[0], cols.values[0]
    if key is None or len(key) != _KEY.size or value is None or len(value) != _VALUE.size:
        raise CorruptBatchError("malformed end-transaction marker record", 0)
    kversion, ctype = _KEY.unpack(key)
    vversion, coordinator_epoch = _VALUE.unpack(value)
    if kversion != CONTROL_VERSION or vversion != CONTROL_VERSION or ctype not in (0, 1):
        raise CorruptBatchError(f"unknown control record version/type {kversion}/{ctype}", 0)
    return EndTxnMarker(
        header.producer_id, header.producer_epoch, ControlType(ctype), coordinator_epoch
    )


def read_marker(log, header: B.BatchHeader) -> EndTxnMarker:
    """Parse the marker batch ``header`` describes, reading it from ``log`` (a PartitionLog)."""
    data = log.read(header.base_offset, header.length)
    got = B.read_header(data)
    if got.base_offset != header.base_offset:
        raise CorruptBatchError(f"no batch at offset {header.base_offset}", 0)
    return parse_marker(got, memoryview(data)[: got.length])
