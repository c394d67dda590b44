"""The leader's rewrites of a produced batch before it is appended, as Kafka's LogValidator
does them: a topic's ``message.timestamp.type=LogAppendTime`` and its ``compression.type``.

- LogAppendTime: ``max_timestamp`` becomes the leader's clock (``now_ms``, an argument: this
  module never reads the clock) and attributes bit 3 is set; the payload (the producer's
  create times as deltas) is kept, and every reader takes ``max_timestamp`` as each record's
  timestamp (``batch.decode_columns``, the consumers, the Kafka listener's transcoding, the
  time index and ListOffsets by timestamp). Followers copy the leader's bytes, so every
  replica holds the same stamp.
- ``compression.type`` other than ``producer``: a batch of another codec is decompressed and
  compressed again with the topic's (``uncompressed``/``none``: no codec).

Both change bytes the digest covers (attributes, max_timestamp, the payload), so the batch is
framed again with a fresh digest by ``batch.encode_batch``: the result is a valid, unstamped
batch (base offset 0, leader epoch -1) with the same counts, producer id, epoch and base
sequence, so idempotence and transactions see the batch the producer sent. The input must
already be validated (the caller checked its digest: a corrupt batch is never re-signed).
"""

from __future__ import annotations

from . import batch as B
from .config import LogConfig

# compression.type -> the codec the topic stores (None: the producer's, kept)
TOPIC_CODECS: dict[str, B.Codec | None] = {
    "producer": None,
    "uncompressed": B.Codec.NONE,
    "none": B.Codec.NONE,
    "gzip": B.Codec.GZIP,
    "snappy": B.Codec.SNAPPY,
    "lz4": B.Codec.LZ4,
    "zstd": B.Codec.ZSTD,
}


class Rewrite:
    """What a topic's configs ask of the leader for each produced batch; built once per
    produce from the log's config. ``needed(attributes)``: is there anything to do for a
    batch with these attributes?"""

    __slots__ = ("codec", "log_append_time")

    def __init__(self, config: LogConfig) -> None:
        self.codec = TOPIC_CODECS[config.compression_type]
        self.log_append_time = config.log_append_time

    @property
    def any(self) -> bool:
        return self.codec is not None or self.log_append_time

    def needed(self, attributes: int) -> bool:
        """A LogAppendTime topic stamps every batch; a CreateTime one clears a producer's
        timestamp-type bit (the broker's to set, as in Kafka); a codec other than the
        topic's is recompressed."""
        return (
            self.log_append_time
            or attributes & B.LOG_APPEND_TIME_FLAG != 0
            or (self.codec is not None and attributes & B.CODEC_MASK != self.codec)
        )

    def apply(self, batch, header: B.BatchHeader, now_ms: int) -> bytes:
        """The batch rewritten (see the module docstring); CorruptBatchError if its payload
        cannot be decompressed."""
        attributes = header.attributes
        payload = memoryview(batch)[B.HEADER_SIZE:header.length]
        codec = attributes & B.CODEC_MASK
        if self.codec is not None and codec != self.codec:
            if codec:
                payload = B._decompress(B.Codec(codec), payload, 0)  # noqa: SLF001
            payload = B._compress(self.codec, bytes(payload))  # noqa: SLF001
            attributes = (attributes & ~B.CODEC_MASK) | int(self.codec)
        max_timestamp = header.max_timestamp
        if self.log_append_time:
            max_timestamp = now_ms
            attributes |= B.LOG_APPEND_TIME_FLAG
        else:
            attributes &= ~B.LOG_APPEND_TIME_FLAG
        return B.encode_batch(
            payload=bytes(payload),
            attributes=attributes,
            last_offset_delta=header.last_offset_delta,
            first_timestamp=header.first_timestamp,
            max_timestamp=max_timestamp,
            producer_id=header.producer_id,
            producer_epoch=header.producer_epoch,
            base_sequence=header.base_sequence,
            record_count=header.record_count,
        )
