"""Helpers of the compaction-with-transactions tests: a log driven like a partition leader
(validator, markers, producer state), keyed batches, and readers that return whole records."""

from __future__ import annotations

from rillet.logstore import producer_state as PS
from rillet.logstore import transactions as T
from rillet.logstore.batch import BatchBuilder, iter_batches, records
from rillet.logstore.config import LogConfig
from rillet.logstore.log import PartitionLog
from rillet.logstore.producer_snapshots import ProducerSnapshots
from rillet.logstore.txn_markers import ControlType, EndTxnMarker
from rillet.logstore.validator import append_validated

from .helpers import NoSyncFS

T0 = 1_700_000_000_000


class Leader:
    """A log, its producer state and a clock: appends as the partition leader does, with the
    high watermark at the log end (every replica caught up). Keyless records are let in
    (``require_keys=False``): written before the topic became compacted, the cleaner must
    cope with them."""

    def __init__(self, directory, config: LogConfig) -> None:
        self.directory = directory
        self.config = config
        self.log = PartitionLog.open(directory, config, T0, fs=NoSyncFS())
        self.ps = PS.ProducerStateManager()
        self.now = T0

    # ------------------------------------------------------------------------- writing

    def _epoch_seq(self, pid: int) -> tuple[int, int]:
        e = self.ps.entry(pid)
        if e is None:
            return 0, 0
        return e.producer_epoch, (e.last_seq + 1 if e.batches else 0)

    def plain(self, pairs) -> int:
        b = BatchBuilder()
        for k, v in pairs:
            b.append(self.now, k, v)
        r = append_validated(self.log, self.ps, b.build(), 0, self.now, require_keys=False)
        assert r.error == "NONE", r
        return r.base_offset

    def txn(self, pid: int, pairs) -> int:
        epoch, seq = self._epoch_seq(pid)
        b = BatchBuilder(
            producer_id=pid, producer_epoch=epoch, base_sequence=seq, is_transactional=True
        )
        for k, v in pairs:
            b.append(self.now, k, v)
        r = append_validated(self.log, self.ps, b.build(), 0, self.now, lambda p, e: True,
                             require_keys=False)
        assert r.error == "NONE", r
        return r.base_offset

    def end(self, pid: int, commit: bool) -> int:
        epoch, _ = self._epoch_seq(pid)
        ctype = ControlType.COMMIT if commit else ControlType.ABORT
        # KIP-890 part 2: every transaction end bumps the epoch
        r = T.append_marker(self.log, self.ps, EndTxnMarker(pid, epoch + 1, ctype, 0), 0, self.now)
        assert r.error == "NONE", r
        return r.offset

    def roll(self) -> None:
        self.log.roll(self.now)

    # ------------------------------------------------------------------------- reading

    @property
    def hw(self) -> int:
        return self.log.log_end_offset

    def lso(self, ps: PS.ProducerStateManager | None = None) -> int:
        ps = self.ps if ps is None else ps
        ps.on_high_watermark_updated(self.hw)
        return T.last_stable_offset(ps, self.hw, self.log.log_start_offset)

    def compact(self, now_ms: int):
        return self.log.compact(now_ms, last_stable_offset=self.lso())

    def committed(self, lso: int | None = None, log=None) -> list[tuple]:
        """read_committed: (offset, key, value, timestamp) below the LSO, no control record,
        no record of an aborted transaction (by the log's aborted-transaction index)."""
        log = self.log if log is None else log
        lso = self.lso() if lso is None else lso
        aborted = log.txn_index.aborted_transactions(log.log_start_offset, lso)
        out = []
        for header, data in batches(log):
            if header.base_offset >= lso:
                break
            if header.is_control:
                continue
            if header.is_transactional and any(
                t.producer_id == header.producer_id
                and t.first_offset <= header.base_offset < t.last_offset
                for t in aborted
            ):
                continue
            out.extend((r.offset, r.key, r.value, r.timestamp) for r in records(data))
        return [r for r in out if r[0] < lso]

    def reopen(
        self, *, drop_txn_indexes: bool = False, snapshots: bool = False
    ) -> PS.ProducerStateManager:
        """Close, reopen and load the transaction state as the partition does at open (with
        the .txnindex files deleted first if asked: they are rebuilt from the log; from the
        producer snapshot files in the directory if asked)."""
        self.log.close()
        if drop_txn_indexes:
            for p in self.directory.iterdir():
                if p.suffix == ".txnindex":
                    p.unlink()
        self.log = PartitionLog.open(self.directory, self.config, self.now, fs=NoSyncFS())
        found = ProducerSnapshots(self.log.fs, self.directory).read() if snapshots else None
        loaded = T.load_transaction_state(self.log, found)
        loaded.on_high_watermark_updated(self.hw)
        return loaded


def batches(log, start: int | None = None) -> list[tuple]:
    """(header, bytes) of every batch from ``start`` (default: the log start) to the end."""
    offset = log.log_start_offset if start is None else start
    out = []
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20)
        if not data:
            break
        for header, view in iter_batches(data):
            out.append((header, bytes(view)))
            offset = header.next_offset
    return out


def marker_offsets(log) -> list[int]:
    """The offsets of the marker records in the log (a cleaned batch may start earlier)."""
    return [r.offset for h, data in batches(log) if h.is_control for r in records(data)]


def compacted_view(view: list[tuple], upper: int, horizon: int) -> list[tuple]:
    """What compacting the read_committed ``view`` below ``upper`` must leave: the latest
    record per key, tombstones only until ``horizon``, null keys kept, the rest untouched."""
    latest = {r[1]: r[0] for r in view if r[0] < upper and r[1] is not None}
    return [
        r
        for r in view
        if r[0] >= upper
        or r[1] is None
        or (latest[r[1]] == r[0] and not (r[2] is None and r[3] < horizon))
    ]


def open_transactions(ps: PS.ProducerStateManager) -> dict[int, int]:
    return dict(ps.ongoing_transactions())
