"""The transaction coordinator's pure core (KIP-98 with KIP-890 and KIP-447): the state
machine of each transactional.id (:mod:`.state`), the records of ``__transaction_state``
(:mod:`.records`) and the request handlers (:mod:`.coordinator`). docs/transactions.md
describes the design and what is still to be wired."""

from .coordinator import (
    ProducerIdResponse,
    TransactionCoordinator,
    TxnOutcome,
    TxnResult,
    WriteTxnMarkers,
)
from .records import InvalidTxnRecord, TxnRecord, from_kv, replay, to_kv
from .state import IllegalTransition, TopicPartition, TxnMetadata, TxnState, check_transition

__all__ = [
    "IllegalTransition",
    "InvalidTxnRecord",
    "ProducerIdResponse",
    "TopicPartition",
    "TransactionCoordinator",
    "TxnMetadata",
    "TxnOutcome",
    "TxnRecord",
    "TxnResult",
    "TxnState",
    "WriteTxnMarkers",
    "check_transition",
    "from_kv",
    "replay",
    "to_kv",
]
