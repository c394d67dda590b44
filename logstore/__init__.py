"""The storage engine of one partition: record batches, segments, indexes, recovery.

Pure and synchronous: imports only the standard library, cbor2, blake3 and the optional
compression codecs. Never pykka, zmq or loguru (enforced by tests/unit/test_layering.py).
"""

from .batch import BatchBuilder, BatchHeader, Codec, Record, decode_records, records
from .config import LogConfig
from .epochs import LeaderEpochCache
from .errors import (
    CorruptBatchError,
    LogFailedError,
    LogStoreError,
    MissingCodecError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
)
from .log import AppendInfo, PartitionLog

__all__ = [
    "AppendInfo",
    "BatchBuilder",
    "BatchHeader",
    "Codec",
    "CorruptBatchError",
    "LeaderEpochCache",
    "LogConfig",
    "LogFailedError",
    "LogStoreError",
    "MissingCodecError",
    "OffsetOutOfRangeError",
    "PartitionLog",
    "Record",
    "RecordTooLargeError",
    "decode_records",
    "records",
]
