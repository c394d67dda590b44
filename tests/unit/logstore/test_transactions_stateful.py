"""Model-based test of transactions in the log store: hypothesis interleaves transactional and
plain appends, commits, aborts, high-watermark moves, truncations above the high watermark and
clean or unclean reopenings of a real log, against a model that is just the list of what was
written. After every step:

- LSO <= high watermark, and the LSO is the model's;
- a read_committed reader (below the LSO, filtered by the aborted-transaction index) sees
  exactly the plain records and those of committed transactions, never an aborted one;
- after a reopen, the state loaded from the log (and the rebuilt index) equals the live one.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from rillet.logstore import producer_state as PS
from rillet.logstore import transactions as T
from rillet.logstore.config import LogConfig
from rillet.logstore.log import PartitionLog
from rillet.logstore.txn_markers import ControlType, EndTxnMarker
from rillet.logstore.validator import append_validated

from .helpers import NoSyncFS
from .txn_helpers import NOW, plain_batch, read_committed, txn_batch

CONFIG = LogConfig(segment_bytes=500, index_interval_bytes=150, retention_ms=-1)
PIDS = (1, 2, 3)


def _projection(ps: PS.ProducerStateManager, hw: int):
    producers = {
        pid: (
            e.producer_epoch,
            e.current_txn_first_offset,
            e.last_seq,
            e.coordinator_epoch,
            e.last_marker_offset,
        )
        for pid, e in ps.producers.items()
    }
    return producers, [t for t in ps.unreplicated if t.last_offset >= hw]


class TxnLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="rillet-txnmodel-"))
        self.log = PartitionLog.open(self.dir, CONFIG, NOW, fs=NoSyncFS())
        self.ps = PS.ProducerStateManager()
        # the model: (offset, kind, pid, value) in log order; kind "plain", "txn",
        # "commit" or "abort" (markers carry no value)
        self.events: list[tuple[int, str, int, bytes | None]] = []
        self.hw = 0
        self.counter = 0

    def teardown(self) -> None:
        if not self.log._closed:
            self.log.abandon()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --------------------------------------------------------------------------- the model

    def expected(self) -> tuple[int, list[tuple[int, bytes]]]:
        """(LSO, what read_committed returns) according to the model."""
        fate: dict[int, str] = {}  # event index of a txn record -> its marker's kind
        marker_at: dict[int, int] = {}  # event index -> offset of the marker that ends it
        open_: dict[int, list[int]] = {}
        for i, (offset, kind, pid, _) in enumerate(self.events):
            if kind == "txn":
                open_.setdefault(pid, []).append(i)
            elif kind in ("commit", "abort"):
                for j in open_.pop(pid, []):
                    fate[j], marker_at[j] = kind, offset
        lso = self.hw
        for i, (offset, kind, _pid, _) in enumerate(self.events):
            if kind == "txn" and (i not in fate or marker_at[i] >= self.hw):
                lso = min(lso, offset)
        visible = [
            (offset, value)
            for i, (offset, kind, _pid, value) in enumerate(self.events)
            if offset < lso and (kind == "plain" or (kind == "txn" and fate.get(i) == "commit"))
        ]
        return lso, visible

    def producer(self, pid: int) -> tuple[int, int]:
        """(epoch, next sequence) of ``pid`` as the partition knows it."""
        e = self.ps.entry(pid)
        if e is None:
            return 0, 0
        return e.producer_epoch, (e.last_seq + 1 if e.batches else 0)

    def value(self) -> bytes:
        self.counter += 1
        return b"v%d" % self.counter

    # ----------------------------------------------------------------------------- rules

    @rule(pid=st.sampled_from(PIDS), n=st.integers(1, 3))
    def transactional_append(self, pid, n):
        epoch, seq = self.producer(pid)
        values = [self.value() for _ in range(n)]
        r = append_validated(
            self.log,
            self.ps,
            txn_batch(pid, seq, values, epoch=epoch),
            0,
            NOW,
            lambda p, e: True,
        )
        assert r.error == "NONE", r
        self.events.extend((r.base_offset + i, "txn", pid, v) for i, v in enumerate(values))

    @rule(n=st.integers(1, 3))
    def plain_append(self, n):
        values = [self.value() for _ in range(n)]
        r = append_validated(self.log, self.ps, plain_batch(values), 0, NOW)
        assert r.error == "NONE", r
        self.events.extend((r.base_offset + i, "plain", -1, v) for i, v in enumerate(values))

    @rule(pid=st.sampled_from(PIDS), commit=st.booleans())
    def end_transaction(self, pid, commit):
        epoch, _ = self.producer(pid)
        ctype = ControlType.COMMIT if commit else ControlType.ABORT
        # KIP-890 part 2: every transaction end bumps the epoch
        r = T.append_marker(self.log, self.ps, EndTxnMarker(pid, epoch + 1, ctype, 0), 0, NOW)
        assert r.error == "NONE", r
        self.events.append((r.offset, "commit" if commit else "abort", pid, None))

    @precondition(lambda self: self.log.log_end_offset > self.hw)
    @rule(k=st.integers(1, 4))
    def advance_high_watermark(self, k):
        # a high watermark is some replica's log end: always a batch boundary
        ends = [h.next_offset for h in self.log.batch_headers(self.hw) if h.next_offset > self.hw]
        self.hw = ends[min(k, len(ends)) - 1]
        self.ps.on_high_watermark_updated(self.hw)

    @precondition(lambda self: self.log.log_end_offset > self.hw)
    @rule(data=st.data())
    def truncate_above_high_watermark(self, data):
        offset = data.draw(st.integers(self.hw, self.log.log_end_offset - 1))
        self.log.truncate_to(offset)
        leo = self.log.log_end_offset
        assert leo >= self.hw  # the HW is a batch boundary
        if not self.ps.truncate_to(leo):
            self.ps = PS.rebuild_from_log(self.log)
            self.ps.on_high_watermark_updated(self.hw)
        self.events = [e for e in self.events if e[0] < leo]

    @rule(clean=st.booleans())
    def reopen(self, clean):
        live_index = self.log.txn_index.all()
        if clean:
            self.log.close()
        else:
            self.log.abandon()
        self.log = PartitionLog.open(self.dir, CONFIG, NOW, fs=NoSyncFS())
        loaded = T.load_transaction_state(self.log)
        loaded.on_high_watermark_updated(self.hw)
        assert _projection(loaded, self.hw) == _projection(self.ps, self.hw)
        assert self.log.txn_index.all() == live_index
        assert self.log.txn_index.missing == set()
        self.ps = loaded

    # ------------------------------------------------------------------------ invariants

    @invariant()
    def reads_match_the_model(self):
        lso, visible = self.expected()
        got_lso = T.last_stable_offset(self.ps, self.hw)
        assert got_lso <= self.hw
        assert got_lso == lso
        assert read_committed(self.log, self.ps, self.hw) == visible

    @invariant()
    def rebuilding_from_the_log_gives_the_live_state(self):
        rebuilt = PS.rebuild_from_log(self.log)
        rebuilt.on_high_watermark_updated(self.hw)
        assert _projection(rebuilt, self.hw) == _projection(self.ps, self.hw)


TxnLogMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_transactions_stateful = TxnLogMachine.TestCase
