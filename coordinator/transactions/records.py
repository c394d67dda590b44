"""Records of the ``__transaction_state`` topic, and the replay that rebuilds state from them.

The topic is compacted and keyed by transactional.id: the latest record per key is the state
of that id; a tombstone (``value is None``) is an expired id. Handlers never change state
directly: they emit records and apply them with :func:`apply`, the same function that
replays the topic when a coordinator takes over a partition, so replaying everything ever
emitted gives the live state by construction. Replay does not check transitions: compaction
may have removed every record of an id but its latest.

``to_kv`` gives plain dicts (str/int/lists/None) for the actor to CBOR-encode; ``from_kv``
checks every field strictly and raises :class:`InvalidTxnRecord` on anything else::

    key    {"type": "transaction", "transactional_id": str}
    value  {"version": 0, "producer_id": int, "producer_epoch": int,
            "last_producer_id": int, "last_producer_epoch": int, "timeout_ms": int,
            "state": "Empty" | "Ongoing" | "PrepareCommit" | ... ,
            "partitions": [[topic, partition], ...] (sorted),
            "txn_start_ms": int, "last_update_ms": int,
            "txn_version": 1 (only when 1: a Kafka client's transaction, no epoch bump)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rillet.frozen import frozen

from .state import TopicPartition, TxnMetadata, TxnState

VERSION = 0
RECORD_TYPE = "transaction"
_VALUE_KEYS = frozenset(
    {
        "version",
        "producer_id",
        "producer_epoch",
        "last_producer_id",
        "last_producer_epoch",
        "timeout_ms",
        "state",
        "partitions",
        "txn_start_ms",
        "last_update_ms",
    }
)


_VALUE_KEYS_V1 = _VALUE_KEYS | {"txn_version"}


class InvalidTxnRecord(ValueError):
    """A record of ``__transaction_state`` that is not one this module writes."""


@frozen
class TxnRecord:
    """The state of ``transactional_id`` from now on; ``metadata`` None is a tombstone."""

    transactional_id: str
    metadata: TxnMetadata | None


def record_of(meta: TxnMetadata) -> TxnRecord:
    if meta.state is TxnState.DEAD:
        return TxnRecord(meta.transactional_id, None)
    return TxnRecord(meta.transactional_id, meta)


def to_kv(record: TxnRecord) -> tuple[dict[str, Any], dict[str, Any] | None]:
    key = {"type": RECORD_TYPE, "transactional_id": record.transactional_id}
    m = record.metadata
    if m is None:
        return key, None
    value = {
        "version": VERSION,
        "producer_id": m.producer_id,
        "producer_epoch": m.producer_epoch,
        "last_producer_id": m.last_producer_id,
        "last_producer_epoch": m.last_producer_epoch,
        "timeout_ms": m.timeout_ms,
        "state": m.state.value,
        "partitions": [[tp.topic, tp.partition] for tp in sorted(m.partitions)],
        "txn_start_ms": m.txn_start_ms,
        "last_update_ms": m.last_update_ms,
    }
    if m.txn_version != 2:  # records of rillet's own clients stay as they were
        value["txn_version"] = m.txn_version
    return key, value


def _int(v: Any, what: str) -> int:
    if type(v) is not int:
        raise InvalidTxnRecord(f"{what} must be an int, got {type(v).__name__}")
    return v


def from_kv(key: Mapping[str, Any], value: Mapping[str, Any] | None) -> TxnRecord:
    if not isinstance(key, Mapping) or set(key) != {"type", "transactional_id"}:
        raise InvalidTxnRecord(f"bad key {key!r}")
    tid = key["transactional_id"]
    if key["type"] != RECORD_TYPE or type(tid) is not str or not tid:
        raise InvalidTxnRecord(f"bad key {key!r}")
    if value is None:
        return TxnRecord(tid, None)
    if not isinstance(value, Mapping) or set(value) not in (_VALUE_KEYS, _VALUE_KEYS_V1):
        raise InvalidTxnRecord(f"bad value fields for {tid!r}")
    if value["version"] != VERSION:
        raise InvalidTxnRecord(f"unknown record version {value['version']!r}")
    try:
        state = TxnState(value["state"])
    except ValueError:
        raise InvalidTxnRecord(f"unknown state {value['state']!r}") from None
    if state in (TxnState.DEAD, TxnState.PREPARE_EPOCH_FENCE):
        raise InvalidTxnRecord(f"state {state.value} is never written")
    parts = value["partitions"]
    if not isinstance(parts, list):
        raise InvalidTxnRecord("partitions must be a list")
    tps = []
    for p in parts:
        if not (isinstance(p, list) and len(p) == 2 and type(p[0]) is str):
            raise InvalidTxnRecord(f"bad partition {p!r}")
        tps.append(TopicPartition(p[0], _int(p[1], "partition")))
    txn_version = value.get("txn_version", 2)
    if "txn_version" in value and (type(txn_version) is not int or txn_version != 1):
        raise InvalidTxnRecord(f"bad txn_version {txn_version!r}")
    meta = TxnMetadata(
        transactional_id=tid,
        producer_id=_int(value["producer_id"], "producer_id"),
        producer_epoch=_int(value["producer_epoch"], "producer_epoch"),
        last_producer_id=_int(value["last_producer_id"], "last_producer_id"),
        last_producer_epoch=_int(value["last_producer_epoch"], "last_producer_epoch"),
        timeout_ms=_int(value["timeout_ms"], "timeout_ms"),
        state=state,
        partitions=frozenset(tps),
        txn_start_ms=_int(value["txn_start_ms"], "txn_start_ms"),
        last_update_ms=_int(value["last_update_ms"], "last_update_ms"),
        txn_version=txn_version,
    )
    return TxnRecord(tid, meta)


def apply(transactions: dict[str, TxnMetadata], record: TxnRecord) -> None:
    """Apply one record to ``transactions`` (transactional.id -> metadata), in place."""
    if record.metadata is None:
        transactions.pop(record.transactional_id, None)
    else:
        transactions[record.transactional_id] = record.metadata


def replay(records: Iterable[TxnRecord]) -> dict[str, TxnMetadata]:
    out: dict[str, TxnMetadata] = {}
    for r in records:
        apply(out, r)
    return out
