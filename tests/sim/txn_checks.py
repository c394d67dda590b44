"""The checks of the transaction simulation (txn_harness.py): what the world tells them
(records committed, data and markers appended, values read) and the invariants, after every
step and at the end of a seed. ``TxnChecks`` is mixed into ``TxnSim``; the docstring of
txn_harness.py lists the invariants."""

from __future__ import annotations

from rillet.coordinator.transactions import TxnState
from rillet.coordinator.transactions import records as R
from rillet.logstore import batch as B
from rillet.logstore.txn_markers import ControlType, read_marker

from .txn_world import READ_BYTES, SimPartition

S = TxnState


class InvariantViolation(AssertionError):
    """A transaction safety or liveness property broke."""


class Reader:
    """A read_committed consumer of one partition (the client's filter)."""

    def __init__(self, part: SimPartition) -> None:
        self.part = part
        self.position = 0
        self.seen: list[bytes] = []

    def poll(self, sim) -> None:
        part = self.part
        lso = part.lso
        while self.position < lso:
            data = part.log.read(self.position, READ_BYTES, max_offset=lso)
            if not data:
                raise InvariantViolation(
                    f"{part.name}: nothing to read at {self.position} < LSO {lso}"
                )
            aborted = part.log.txn_index.aborted_transactions(self.position, lso)
            if sim.cfg.variant == "reader-ignores-index":
                aborted = []
            for header, view in B.iter_batches(data, validate=False):
                if header.base_offset != self.position or header.last_offset >= lso:
                    raise InvariantViolation(f"{part.name}: read {header} at {self.position}")
                self.position = header.next_offset
                if header.is_control:
                    continue
                if header.is_transactional and any(
                    a.producer_id == header.producer_id
                    and a.first_offset <= header.base_offset < a.last_offset
                    for a in aborted
                ):
                    continue
                for rec in B.decode_records(view, validate=False):
                    sim.check_read(part, rec.value)
                    self.seen.append(rec.value)


class TxnChecks:
    """The invariants; mixed into TxnSim (which holds the state they read)."""

    # ------------------------------------------------------------------- observations

    def on_txn_record(self, rec: R.TxnRecord) -> None:
        """A record of __transaction_state is committed."""
        R.apply(self.replayed, rec)
        if rec.metadata is not None:
            self.pids.setdefault(rec.transactional_id, set()).add(rec.metadata.producer_id)

    def on_txn_decision(self, rec: R.TxnRecord) -> None:
        """The coordinator acts on ``rec`` (once committed; at once in "uncommitted-reads")."""
        prev = self.last_record.get(rec.transactional_id)
        self.last_record[rec.transactional_id] = rec.metadata
        m = rec.metadata
        if m is None:
            return
        if m.state in (S.PREPARE_COMMIT, S.PREPARE_ABORT):
            key = None
            if prev is not None and prev.state is S.ONGOING:
                key = (prev.producer_id, prev.producer_epoch)
                if key in self.decided:
                    self.fail(f"transaction {key} decided twice")
                commit = m.state is S.PREPARE_COMMIT
                self.decided[key] = (commit, prev.partitions, rec.transactional_id)
                self.trace(f"decided {key} commit={commit} on {sorted(prev.partitions)}")
            self.deciding[rec.transactional_id] = key
        elif m.state in (S.COMPLETE_COMMIT, S.COMPLETE_ABORT):
            key = self.deciding.pop(rec.transactional_id, None)
            if key is not None:
                self.completed.add(key)

    def on_coordinator_loaded(self, coord) -> None:
        live = coord.tc.transactions
        if live != self.replayed or live != R.replay(coord.decoded()):
            self.fail("the coordinator reloaded from __transaction_state differs from replay")

    def on_data_appended(self, part: SimPartition, pid: int, epoch: int, at: int, what: str):
        i = part.index
        self.trace(f"{part.name} appended {what} at {at}")
        marker = self.marker_epoch[i].get(pid, -1)
        if epoch < marker:
            self.fail(
                f"{part.name}: fenced batch {what} (epoch {epoch}) after a marker of epoch {marker}"
            )
        if (pid, epoch) in self.completed:
            self.fail(f"{part.name}: {what} appended after its transaction completed")
        if self.decided.get((pid, epoch), (False,))[0]:
            self.fail(f"{part.name}: {what} appended after its transaction was committed")
        open_epoch = self.open_epoch[i].setdefault(pid, epoch)
        if open_epoch != epoch:
            self.fail(f"{part.name}: {what} joins the open data of epoch {open_epoch}")

    def on_marker_appended(self, part: SimPartition, marker, r) -> None:
        self.trace(f"{part.name} marker {marker} at {r.offset}")
        self._closed_by_marker(
            part,
            marker.producer_id,
            marker.producer_epoch,
            marker.control_type,
            r.completed is not None,
        )

    def _closed_by_marker(self, part, pid, epoch, ctype, closes: bool) -> None:
        i = part.index
        self.marker_epoch[i][pid] = max(epoch, self.marker_epoch[i].get(pid, -1))
        data_epoch = self.open_epoch[i].pop(pid, None)
        if closes != (data_epoch is not None):
            self.fail(f"{part.name}: marker of {pid} closes={closes}, open data {data_epoch}")
        if data_epoch is None:
            return
        decision = self.decided.get((pid, data_epoch))
        if decision is None:
            self.fail(f"{part.name}: a marker closed ({pid}, {data_epoch}), never decided")
        if decision[0] != (ctype is ControlType.COMMIT) or epoch <= data_epoch:
            self.fail(
                f"{part.name}: marker {ctype.name} epoch {epoch} for ({pid}, "
                f"{data_epoch}) decided commit={decision[0]}"
            )
        if part.tp not in decision[1]:
            self.fail(f"{part.name}: data of ({pid}, {data_epoch}) outside its partitions")

    def on_producer_granted(self, client: str, pid: int, epoch: int) -> None:
        """An instance was given (pid, epoch): no other instance may ever hold it (else
        neither fences the other)."""
        holder = self.granted.setdefault((pid, epoch), client)
        if holder != client:
            self.fail(f"{client} and {holder} were both given producer {pid} epoch {epoch}")

    def check_read(self, part: SimPartition, value: bytes) -> None:
        key = self.values.get(value)
        if key is None or not self.decided.get(key, (False,))[0]:
            self.fail(f"{part.name}: read_committed returned {value!r} of {key}, not committed")
        if value in self.read_values:
            self.fail(f"{part.name}: read_committed returned {value!r} twice")
        self.read_values.add(value)

    # ------------------------------------------------------------------------ invariants

    def check_step(self) -> None:
        coord = self.coord
        if coord.up:
            expected = self.replayed
            if coord.uncommitted:
                expected = dict(expected)
                for rec in coord.pending_records():
                    R.apply(expected, rec)
            if coord.tc.transactions != expected:
                self.fail("live coordinator state != replay of __transaction_state")
        for p in self.parts:
            if not p.up:
                continue
            lso = p.lso
            if lso > p.hw or lso < self.lso_seen[p.index]:
                self.fail(f"{p.name}: LSO {lso} (was {self.lso_seen[p.index]}), HW {p.hw}")
            self.lso_seen[p.index] = lso

    def scan(self, part: SimPartition) -> list[bytes]:
        """Walk the whole log: rebuild the per-producer views, check every marker against the
        decisions; the committed values in log order."""
        i = part.index
        self.open_epoch[i], self.marker_epoch[i] = {}, {}
        committed: list[tuple[int, list[bytes]]] = []  # (base offset, values)
        batches = list(part.log.batch_headers(part.log.log_start_offset))
        opened: dict[int, list] = {}
        for header in batches:
            pid = header.producer_id
            if header.is_control:
                marker = read_marker(part.log, header)
                self._closed_by_marker(
                    part, pid, marker.producer_epoch, marker.control_type, pid in self.open_epoch[i]
                )
                for base, view in opened.pop(pid, []):
                    if marker.control_type is ControlType.COMMIT:
                        values = [r.value for r in B.decode_records(view, validate=False)]
                        committed.append((base, values))
                continue
            e = self.open_epoch[i].setdefault(pid, header.producer_epoch)
            if e != header.producer_epoch:
                self.fail(f"{part.name}: epochs {e} and {header.producer_epoch} of {pid} open")
            data = part.log.read(header.base_offset, header.length)
            opened.setdefault(pid, []).append(
                (header.base_offset, memoryview(data)[: header.length])
            )
        return [v for _, values in sorted(committed) for v in values]

    def check_end(self) -> None:
        if not self._settled():
            self.fail(
                "not settled: a hanging transaction or an unread partition " + self._state_line()
            )
        for p, r in zip(self.parts, self.readers, strict=True):
            committed = self.scan(p)
            if self.open_epoch[p.index]:
                self.fail(f"{p.name}: transactions left open {self.open_epoch[p.index]}")
            if r.seen != committed:
                self.fail(
                    f"{p.name}: read_committed {len(r.seen)} records != the "
                    f"{len(committed)} committed in the log"
                )
        seen = {tp: set(r.seen) for tp, r in zip(self.tps, self.readers, strict=True)}
        for name, _tid, pid, epoch, commit, acked, sent in self.claims:
            decision = self.decided.get((pid, epoch))
            if decision is None or decision[0] != commit:
                self.fail(
                    f"{name}: ended ({pid}, {epoch}) commit={commit}, coordinator "
                    f"decided {decision}"
                )
            for tp, values in (acked if commit else sent).items():
                got = [v for v in values if v in seen[tp]]
                if commit and got != values:
                    self.fail(f"{name}: committed {len(values)} on {tp}, read {len(got)}")
                if not commit and got:
                    self.fail(f"{name}: aborted values read on {tp}: {got[:3]}")
        if self.unexpected:
            self.fail(f"unexpected answers: {self.unexpected}")

    def _state_line(self) -> str:
        parts = ", ".join(
            f"{p.name} up={p.up} leo={p.log.log_end_offset} hw={p.hw} lso={p.lso} read={r.position}"
            for p, r in zip(self.parts, self.readers, strict=True)
        )
        txns = {
            t: m.state.value
            for t, m in (self.coord.tc.transactions.items() if self.coord.up else ())
        }
        return f"[{parts}; coordinator {txns} inflight {len(self.coord.inflight)}]"
