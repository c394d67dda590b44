"""Leader-epoch cache: which leader epoch started at which offset (Kafka's LeaderEpochFileCache).

A follower that learns of a new leader asks it for the end offset of the follower's latest
epoch (OffsetsForLeaderEpoch, KIP-101/279) and truncates its log there, so that it never keeps
records the new leader does not have. ``end_offset_for`` is the leader's side of that exchange.

Entries are (epoch, start_offset) with both strictly increasing. Every change is written
before the log writes the batch that caused it. Truncations are made durable at once; a new
epoch (``assign``, on the first append of each epoch: thousands of fsyncs when a broker
takes over many partitions) is written without fsync and made durable by the log's next
flush, before the recovery point passes it (Kafka did the same, KAFKA-15046). So after a
process crash the cache can be ahead of the log (never behind), and recovery truncates it
to the log end offset; after a power loss it may lack the epochs of unflushed batches,
which recovery re-derives from the batches, as it does for everything above the recovery
point. Owned by the partition log's single owner thread; not thread-safe.

Example: entries [(0, 0), (2, 120), (5, 300)], log_end_offset 410::

    end_offset_for(5) == (5, 410)     # the latest epoch ends at the log end
    end_offset_for(2) == (2, 300)     # epoch 2 ended where epoch 5 started
    end_offset_for(3) == (2, 300)     # unknown epoch 3: the largest epoch below it, and where it ended
    end_offset_for(7) == (-1, -1)     # newer than anything known: UNDEFINED
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


class LeaderEpochCache:
    def __init__(
        self,
        entries: list[tuple[int, int]] | None = None,
        persist: Callable[[list[tuple[int, int]], bool], None] | None = None,
        log_end_offset: Callable[[], int] | None = None,
    ) -> None:
        self._epochs: list[int] = []
        self._offsets: list[int] = []
        for epoch, offset in entries or ():
            if self._epochs and (epoch <= self._epochs[-1] or offset < self._offsets[-1]):
                raise ValueError(f"leader epoch entries out of order at {(epoch, offset)}")
            self._epochs.append(epoch)
            self._offsets.append(offset)
        self._persist = persist
        self._log_end_offset = log_end_offset

    @property
    def entries(self) -> list[tuple[int, int]]:
        return list(zip(self._epochs, self._offsets, strict=True))

    @property
    def latest_epoch(self) -> int:
        return self._epochs[-1] if self._epochs else UNDEFINED_EPOCH

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch whose range contains ``offset`` (UNDEFINED if before the first entry)."""
        i = bisect.bisect_right(self._offsets, offset) - 1
        return self._epochs[i] if i >= 0 else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; True if the cache changed.

        An epoch not newer than the latest is ignored (it is already known). Entries whose
        start offset is >= ``start_offset`` are superseded (Kafka drops them likewise).
        """
        if epoch <= self.latest_epoch:
            return False
        while self._offsets and self._offsets[-1] >= start_offset:
            self._epochs.pop()
            self._offsets.pop()
        self._epochs.append(epoch)
        self._offsets.append(start_offset)
        self._save(durable=False)
        return True

    def end_offset_for(
        self, requested_epoch: int, log_end_offset: int | None = None
    ) -> tuple[int, int]:
        """(epoch, end offset) for a follower's OffsetsForLeaderEpoch request (KIP-279).

        The end offset is the start offset of the first epoch after ``requested_epoch`` (or the
        log end offset for the latest epoch: the owning log's unless given); the epoch returned is the largest known epoch
        <= ``requested_epoch``. (-1, -1) if the requested epoch is newer than any known.
        """
        if requested_epoch == UNDEFINED_EPOCH or not self._epochs:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if requested_epoch == self._epochs[-1]:
            if log_end_offset is None:
                log_end_offset = self._log_end_offset()  # the owning log's end offset
            return requested_epoch, log_end_offset
        higher = bisect.bisect_right(self._epochs, requested_epoch)
        if higher == len(self._epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if higher == 0:  # older than every epoch we know of
            return requested_epoch, self._offsets[0]
        return self._epochs[higher - 1], self._offsets[higher]

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop entries starting at or after ``end_offset`` (the log was truncated there)."""
        i = bisect.bisect_left(self._offsets, end_offset)
        if i < len(self._offsets):
            del self._epochs[i:], self._offsets[i:]
            self._save()

    def truncate_from_start(self, start_offset: int) -> None:
        """Forget epochs that ended before ``start_offset`` (the log start advanced)."""
        i = bisect.bisect_right(self._offsets, start_offset) - 1
        if i < 0 or (i == 0 and self._offsets[0] == start_offset):
            return
        del self._epochs[:i], self._offsets[:i]
        self._offsets[0] = start_offset
        self._save()

    def clear(self) -> None:
        if self._epochs:
            self._epochs.clear()
            self._offsets.clear()
            self._save()

    def _save(self, durable: bool = True) -> None:
        if self._persist is not None:
            self._persist(self.entries, durable)
