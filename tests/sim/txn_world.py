"""The network and the partition leaders of the transaction simulation (see txn_harness.py),
driving the shipped log store.

* ``Net``: messages are lost, delayed (so reordered) and duplicated as the seed says; a
  message to a node that is down is lost.
* ``SimPartition``: one partition leader: a real ``PartitionLog`` on a ``MemFileSystem`` with
  its ``ProducerStateManager``. Produce goes through ``validator.append_validated`` with
  ``verified=`` answered by the coordinator's ``verify_partitions`` (KIP-890 part 1, asked
  over the network, remembered per producer epoch until that producer's next marker);
  WriteTxnMarkers through ``transactions.append_marker``. A produce or a marker is answered
  once fsynced: the high watermark is the flushed log end (one replica whose durability is
  its fsync), so a crash (``MemFileSystem.crash``: unsynced bytes lost or torn) loses only
  unanswered writes. The restart is the broker's open: ``PartitionLog.open`` (the real
  recovery), stale snapshots deleted, ``transactions.load_transaction_state``.
* ``SimCoordinator`` (txn_coordinator.py): the transaction coordinator's owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rillet.coordinator.transactions import TopicPartition
from rillet.logstore import transactions as T
from rillet.logstore.config import LogConfig
from rillet.logstore.log import PartitionLog
from rillet.logstore.memfs import MemFileSystem
from rillet.logstore.producer_snapshots import ProducerSnapshots
from rillet.logstore.txn_markers import ControlType, EndTxnMarker
from rillet.logstore.validator import append_validated

TOPIC = "t"
# small segments: logs roll, so sealed .txnindex files and multi-segment reads are exercised
LOG_CONFIG = LogConfig(segment_bytes=2048, index_interval_bytes=256)
READ_BYTES = 1 << 16
FLUSH_MS = 15  # the partition's group commit: an fsync this long after the first write
VERIFY_TIMEOUT_MS = 150  # a produce waiting for verification is dropped after this


@dataclass(slots=True)
class Msg:
    kind: str
    src: str
    dst: str
    rid: int
    body: dict = field(default_factory=dict)


class Net:
    def __init__(self, sim) -> None:
        self.sim = sim
        self.loss = 0.05
        self.dup = 0.03
        self.max_delay_ms = 40
        self.slow = 0.03  # of the messages take a slow path: up to ``slow_delay_ms``
        self.slow_delay_ms = 1_500
        self.sent = self.lost = 0

    def send(self, msg: Msg) -> None:
        rng = self.sim.rng
        self.sent += 1
        if rng.random() < self.loss:
            self.lost += 1
            return
        copies = 2 if rng.random() < self.dup else 1
        for _ in range(copies):
            slow = rng.random() < self.slow
            delay = rng.randint(1, self.slow_delay_ms if slow else self.max_delay_ms)
            self.sim.at(self.sim.now + delay, self._deliver, msg)

    def _deliver(self, msg: Msg) -> None:
        node = self.sim.nodes[msg.dst]
        if node.up:
            node.receive(msg)


class SimPartition:
    def __init__(self, sim, index: int) -> None:
        self.sim = sim
        self.index = index
        self.name = f"p{index}"
        self.tp = TopicPartition(TOPIC, index)
        self.fs = MemFileSystem()
        self.directory = Path(f"/data/{TOPIC}-{index}")
        self.leader_epoch = 0
        self.up = True
        self.crashes = 0
        self._open()

    # ----------------------------------------------------------------------- lifecycle

    def _open(self) -> None:
        now = self.sim.now
        self.log = PartitionLog.open(self.directory, LOG_CONFIG, now, fs=self.fs)
        self.snapshots = ProducerSnapshots(self.fs, self.directory)
        self.snapshots.delete_above(self.log.log_end_offset)
        if self.log.txn_index.missing:
            self.sim.stats["aborted-transaction indexes rebuilt at open"] += 1
        self.producers = T.load_transaction_state(self.log, self.snapshots.read())
        self.hw = self.log.log_end_offset  # open() flushed everything recovery kept
        self.producers.on_high_watermark_updated(self.hw)
        self.acks: list[tuple] = []  # (offset that must be below the HW, msg, error, body)
        self.verifying: dict[int, tuple[Msg, int]] = {}  # verify rid -> (produce, sent at)
        self.verified: dict[int, int] = {}  # producer id -> epoch the coordinator verified
        self.flush_due = False

    def crash(self) -> None:
        rng = self.sim.rng
        self.up = False
        self.crashes += 1
        self.log.abandon()

        def keep(_path: str, pending: int) -> int:
            return rng.choice((0, pending, rng.randint(0, pending)))

        self.fs.crash(keep)

    def restart(self) -> None:
        self.leader_epoch += 1  # a new leadership
        self._open()
        self.up = True

    @property
    def can_crash(self) -> bool:
        return self.up

    @property
    def needs_restart(self) -> bool:
        return not self.up

    @property
    def lso(self) -> int:
        return T.last_stable_offset(self.producers, self.hw)

    # ------------------------------------------------------------------------- requests

    def receive(self, msg: Msg) -> None:
        if msg.kind == "produce":
            self._produce(msg)
        elif msg.kind == "verify_reply":
            pending = self.verifying.pop(msg.rid, None)
            if pending is None:
                return
            produce = pending[0]
            errors = set(msg.body["errors"].values())
            if errors == {"NONE"}:
                self.verified[produce.body["pid"]] = produce.body["epoch"]
                self._append(produce)
            else:
                error = sorted(errors - {"NONE"})[0]
                self.sim.trace(f"{self.name} refused {produce.body['what']}: verify {error}")
                self.sim.stats[f"produce refused by verification: {error}"] += 1
                self._answer(produce, error)
        elif msg.kind == "marker":
            self._marker(msg)

    def _answer_below_hw(self) -> None:
        """Answer the writes whose offsets the high watermark has passed."""
        keep = []
        for offset, msg, error, body in self.acks:
            if offset < self.hw:
                self._answer(msg, error, **body)
            else:
                keep.append((offset, msg, error, body))
        self.acks = keep

    def _answer(self, msg: Msg, error: str, **body) -> None:
        reply = Msg(msg.kind + "_reply", self.name, msg.src, msg.rid, {"error": error, **body})
        self.sim.net.send(reply)

    def _produce(self, msg: Msg) -> None:
        b = msg.body
        if self.sim.cfg.variant == "no-verify":  # KIP-890 part 1 off: trust every write
            self.verified[b["pid"]] = b["epoch"]
        if self.verified.get(b["pid"]) == b["epoch"]:
            self._append(msg)
            return
        rid = self.sim.next_id()
        self.verifying[rid] = (msg, self.sim.now)
        self.sim.at(self.sim.now + VERIFY_TIMEOUT_MS, self._verify_timed_out, rid)
        ask = {"tid": b["tid"], "pid": b["pid"], "epoch": b["epoch"], "tp": self.tp}
        self.sim.net.send(Msg("verify", self.name, "coord", rid, ask))

    def _append(self, msg: Msg) -> None:
        b = msg.body
        pid, epoch = b["pid"], b["epoch"]
        before = self.log.log_end_offset
        a = append_validated(
            self.log,
            self.producers,
            b["batch"],
            self.leader_epoch,
            self.sim.now,
            verified=lambda p, e: self.verified.get(p) == e,
        )
        if a.error != "NONE":
            self.sim.trace(f"{self.name} refused {b['what']}: {a.error}")
            self.sim.stats[f"produce refused: {a.error}"] += 1
            self._answer(msg, a.error)
            return
        if a.duplicate is None:
            self.sim.on_data_appended(self, pid, epoch, before, b["what"])
        else:
            self.sim.trace(f"{self.name} duplicate {b['what']} at {a.base_offset}")
            self.sim.stats["duplicate produce"] += 1
        self._later(a.last_offset, msg, "NONE", offset=a.base_offset)

    def _later(self, upto: int, msg: Msg, error: str, **body) -> None:
        """Answer once offset ``upto`` is below the high watermark (fsynced)."""
        if self.log.unflushed:
            self._kick()
        if upto < self.hw or self.sim.cfg.variant == "ack-before-fsync":
            self._answer(msg, error, **body)
        else:
            self.acks.append((upto, msg, error, body))

    def _marker(self, msg: Msg) -> None:
        b = msg.body
        kind = ControlType.COMMIT if b["commit"] else ControlType.ABORT
        marker = EndTxnMarker(b["pid"], b["epoch"], kind, b["coordinator_epoch"])
        r = T.append_marker(self.log, self.producers, marker, self.leader_epoch, self.sim.now)
        if r.error != "NONE":
            self.sim.trace(f"{self.name} refused marker {marker}: {r.error}")
            self.sim.stats[f"marker refused: {r.error}"] += 1
            self._answer(msg, r.error)
            return
        self.verified.pop(b["pid"], None)  # its transaction here is over
        self.sim.on_marker_appended(self, marker, r)
        self._later(r.offset, msg, "NONE")

    # --------------------------------------------------------------------------- timers

    def _kick(self) -> None:
        """The group commit: one fsync soon after the first unflushed write."""
        if not self.flush_due:
            self.flush_due = True
            self.sim.at(self.sim.now + FLUSH_MS, self._flush, self.crashes)

    def _verify_timed_out(self, rid: int) -> None:
        self.verifying.pop(rid, None)  # the client times out and retries

    def _flush(self, incarnation: int) -> None:
        if incarnation != self.crashes or not self.up:
            return  # scheduled before a crash
        self.flush_due = False
        expiration = self.sim.cfg.producer_expiration_ms
        if expiration is not None:  # producer.id.expiration.ms (scaled down)
            gone = self.producers.remove_expired(self.sim.now, expiration)
            self.sim.stats["producer states expired"] += len(gone)
        self.log.flush()
        self.hw = self.log.log_end_offset
        self.producers.on_high_watermark_updated(self.hw)
        if self.sim.rng.random() < 0.2:
            self.snapshots.write(self.producers, self.log.log_end_offset)
        self._answer_below_hw()
