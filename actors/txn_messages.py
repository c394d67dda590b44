"""Messages between the transaction pieces of one broker (docs/transactions.md).

``TxnMarkerWritten`` goes from the WriteTxnMarkers path (a partition leader that wrote and
replicated a marker to a ``__consumer_offsets`` partition) to the group coordinator, which
then makes the transaction's pending offsets (TxnOffsetCommit, KIP-447) visible (COMMIT) or
drops them (ABORT)."""

from __future__ import annotations

from rillet.frozen import frozen


@frozen
class TxnMarkerWritten:
    """A marker for ``producer_id`` is replicated on ``__consumer_offsets`` partition
    ``partition`` at ``offset``."""

    partition: int
    producer_id: int
    committed: bool
    offset: int
