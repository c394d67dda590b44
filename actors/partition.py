"""PartitionReplica: the actor that owns one partition's ``PartitionLog``.

Only this actor's thread touches the log. Messages (``tell`` only; replies go to callbacks):

* ``Append``    validate the produced batches, append, answer with the base offset;
                with ``flush.mode=group-commit`` the answers wait for one fsync covering every
                append that was in the mailbox
* ``Read``      answer immediately; if empty and the fetch may wait, park a waiter that is
                served on the next append (the long poll; see gather.FetchGather)
* ``ListOffset`` earliest / latest / by timestamp (read_committed: latest is the LSO)
* ``WriteMarker`` append a transaction's COMMIT/ABORT marker, answer once replicated
* ``TxnVerified`` the transaction coordinator's answer for a parked transactional Append
* ``Tick``      interval flush, expiry of parked waiters
* ``Housekeep`` retention and compaction (log.retention.check.interval.ms)
* ``Reconfigure`` reopen the log with a new LogConfig (AlterConfigs)
* ``Delete``    close the log, remove its directory, stop

Replication (docs/replication.md): ``PartitionChanged`` carries the partition's state from
the metadata image. As leader the actor hosts one ``coordinator.replication.LeaderReplica``
per leader epoch (ISR, high watermark = min LEO over the ISR, acks=all purgatory, AlterPartition
proposals sent with ``send_alter``); follower fetches are ``Read`` with ``replica_id >= 0``
and ``EpochEndOffset`` answers OffsetForLeaderEpoch. As follower the replica fetcher
(actors/replica_fetcher.py) drives it with ``ask``: ``FollowerState``, ``FollowerTruncate``,
``FollowerAppend``, ``FollowerReset``. Idempotent producers: ``logstore.producer_state``
(duplicates answered with their original offsets, gaps refused), snapshots in
``<offset>.snapshot`` files, rebuilt on open. Any exception while handling a message is
answered with an error code and logged; it never stops the actor.

The handlers live in mixins, one file per side: partition_produce.py (Append),
partition_fetch.py (Read, ListOffset, EpochEndOffset, long-poll waiters),
partition_follower.py (the Follower* asks), partition_txn.py (transactions: verification of
transactional produces, WriteMarker); the messages in partition_messages.py (re-exported
here). This file keeps the life cycle, the role (leader/follower) and its purgatory,
snapshots and housekeeping.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pykka
from loguru import logger
from rillet.coordinator import replication as RC
from rillet.logstore import producer_state as PS
from rillet.logstore import transactions as T
from rillet.logstore.config import LogConfig
from rillet.logstore.housekeeping import housekeep
from rillet.logstore.log import PartitionLog
from rillet.logstore.producer_snapshots import ProducerSnapshots
from rillet.transport import protocol as P

from .delete_records import DeleteRecords, delete_on_leader
from .log_dirs import DescribeLog, describe_on_replica
from .partition_damage import DamageSide
from .partition_fetch import FetchSide
from .partition_follower import FollowerSide
from .partition_messages import (  # noqa: F401 - re-exported: callers use partition.X
    AlterPartitionAnswer,
    Append,
    DamageAnswer,
    Delete,
    DirectoryClaim,
    EpochEndOffset,
    ExpireProducers,
    FollowerAppend,
    FollowerReset,
    FollowerState,
    FollowerTruncate,
    Housekeep,
    LeaderEpoch,
    ListOffset,
    PartitionChanged,
    Read,
    Reconfigure,
    Scrub,
    Tick,
    WriteMarker,
    _Waiter,
    _Watched,
    code_of,
    error_code_for,
)
from .partition_produce import ProduceSide
from .partition_txn import TxnSide, TxnVerified
from .runtime import DispatchedActor
from .ticker import now_ms

E = P.ErrorCode
TOPIC_ID_FILE = "partition.metadata"
HW_FILE = "high-watermark.checkpoint"
# Producer-state snapshots are taken when the log has rolled to a new segment since the
# last one (Kafka takes them at roll), at most once per interval, and at a clean close:
# after a crash the state is the last snapshot plus a replay of the active segment's batch
# headers. (Every 30 s per written partition was ~100 snapshot files a second per broker at
# 3,000 partitions, issue #12.)
SNAPSHOT_INTERVAL_MS = 30_000


class PartitionReplica(ProduceSide, FetchSide, FollowerSide, DamageSide, TxnSide, DispatchedActor):
    """Owns ``directory``'s log for ``topic``-``partition``. See the module docstring."""

    lane = "io"  # its handlers write and fsync the log: never on the request lane

    @property
    def inline_ok(self) -> bool:
        """Produce appends and follower-fetch reads may run on the session's thread, and
        follower appends on the replica fetcher's (runtime.tell_inline / ask_inline), as
        Kafka's handler threads append: they write to and read from the page cache. Not under
        group commit, whose appends end in an fsync."""
        return self.config.flush_mode != "group-commit"

    def __init__(
        self,
        topic: str,
        partition: int,
        directory: Path,
        config: LogConfig,
        leader_epoch: int,
        broker_id: int,
        topic_id: str = "",
        *,
        info: object | None = None,
        min_insync_replicas: int = 1,
        replica_lag_time_max_ms: int = 30_000,
        send_alter: Callable[[str, int, RC.AlterIsr, Callable[[str], None]], None] | None = None,
        schedule: Callable[[float, Callable[[], None]], object] | None = None,
        hw_sink: dict | None = None,
        initial_high_watermark: int | None = None,
        tick_ms: int = 200,
        send_damage: Callable[[str, int, int, int, Callable[[str], None]], None] | None = None,
        scrub_enabled: bool = False,
        producer_id_expiration_ms: int = PS.PRODUCER_ID_EXPIRATION_MS,
        counters: object | None = None,
        clock: Callable[[], int] = now_ms,  # wall-clock ms; tests may pass a fake one
        txn_verifier: object | None = None,  # txn_verify.TxnVerifier (None: nothing verifies)
        on_txn_marker: Callable[[object], None] | None = None,  # TxnMarkerWritten sink
        claim: DirectoryClaim | None = None,  # shared with the node (None: tests, its own)
    ) -> None:
        super().__init__()
        self.clock = clock
        self.topic = topic
        self.partition = partition
        self.directory = Path(directory)
        self._claim = claim if claim is not None else DirectoryClaim()
        self.config = config
        self.leader_epoch = leader_epoch
        self.broker_id = broker_id
        self.topic_id = topic_id
        self.log: PartitionLog | None = None
        self.high_watermark = 0
        self._waiters: list[_Waiter] = []
        self._watches: dict[int, _Watched] = {}  # follower id -> its fetch session's watch
        self._unacked: list[tuple[Callable, P.ProducePartitionResponse]] = []
        self._log = logger.bind(broker=broker_id, topic=topic, partition=partition)
        # replication: None = the sole replica, leading (tests, single-broker setups)
        self.info = info
        self.min_insync_replicas = min_insync_replicas
        self.lag_ms = replica_lag_time_max_ms
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.send_alter = send_alter
        self.leader: RC.LeaderReplica | None = None
        self.follower_epoch = -1  # >= 0 while following the leader of this epoch
        self.pstate = PS.ProducerStateManager()
        self._acks: dict[int, tuple[Callable, P.ProducePartitionResponse]] = {}
        self._ack_seq = 0
        self._hw_saved = -1
        self._snapshot_at = 0
        self._snapshot_segment = -1  # the active segment's base at the last snapshot
        # The broker's timer service (Ticker.call_later): this replica asks to be woken only
        # when something is due (a flush, a waiter's deadline, an ISR check, a snapshot);
        # None = woken by Tick messages from outside (tests).
        self._schedule = schedule
        self._wake = None
        self._wake_at: int | None = None
        self._tick_ms = tick_ms
        self._next_isr_check = 0
        # The broker-wide high watermark table (node.py writes it to one checkpoint file
        # every replica.high.watermark.checkpoint.interval.ms); None = a file per partition.
        self._hw_sink = hw_sink
        self._initial_hw = initial_high_watermark
        self._init_damage(send_damage, scrub_enabled)  # partition_damage.py
        self._counters = counters  # the broker's (fetch_session.Counters): logs opened
        self._init_txn(txn_verifier, on_txn_marker)  # partition_txn.py
        self._lso_cached: tuple[tuple, int] | None = None  # partition_fetch.py

    # -------------------------------------------------------------------------- lifecycle

    def on_start(self) -> None:
        marker = self.directory / TOPIC_ID_FILE
        with self._claim.lock:  # see DirectoryClaim
            if self._claim.deleted:
                self._log.info("deleted before it started: no directory made, no log opened")
                return
            try:
                if marker.exists() and marker.read_text().strip() != self.topic_id:
                    # Left over from a deleted topic of the same name: never serve its records.
                    self._log.warning("removing data of an older topic with the same name")
                    shutil.rmtree(self.directory)
                if not marker.exists():
                    self.directory.mkdir(parents=True, exist_ok=True)
                    marker.write_text(self.topic_id + "\n")
            except OSError as e:
                self._log.error("cannot prepare {}: {}", self.directory, e)
        self._open()

    def _failed(self, what: str, e: Exception) -> None:
        """A failure to open the log or its state: an error, unless the topic was deleted
        meanwhile (its directory renamed away under the opening; a Delete follows)."""
        if self._claim.deleted:
            self._log.info("{}: deleted while opening ({})", what, e)
        else:
            self._log.error("{}: {}", what, e)

    def _open(self) -> None:
        try:
            self._open_log()
        except Exception as e:
            if not self._claim.deleted:
                raise
            # the node renamed the directory away under the opening: a Delete follows
            self._log.info("deleted while opening ({}): no log", e)
            if self.log is not None:
                self.log.abandon()
                self.log = None

    def _open_log(self) -> None:
        self._forget_lso()
        try:
            self.log = PartitionLog.open(self.directory, self.config, self.clock())
        except Exception as e:  # noqa: BLE001 - a broken log must not take the broker down
            self.log = None
            self._failed(f"cannot open log {self.directory}", e)
            return
        log = self.log
        self.snapshots = ProducerSnapshots(log.fs, self.directory)
        saved = self._initial_hw
        if saved is None:  # no broker-wide checkpoint entry (yet): the per-partition file
            saved = log.fs.read_checkpoint(self.directory / HW_FILE)
        self.high_watermark = min(saved if isinstance(saved, int) else 0, log.log_end_offset)
        self.high_watermark = max(self.high_watermark, log.log_start_offset)
        self._hw_saved = self.high_watermark
        try:
            # snapshots above the log end describe records recovery cut off
            self.snapshots.delete_above(log.log_end_offset)
            # the producer state, and the .txnindex files recovery left without one rebuilt
            self.pstate = T.load_transaction_state(log, self.snapshots.read())
        except Exception as e:  # noqa: BLE001 - lose dedup state, never the partition
            self._failed("cannot rebuild producer state", e)
            self.pstate = PS.ProducerStateManager(log.log_end_offset)
        self.pstate.on_high_watermark_updated(self.high_watermark)
        self._snapshot_at = self.clock()
        self._snapshot_segment = log.segments[-1].base_offset
        self.leader = None
        self.follower_epoch = -1
        self._apply_role(self.clock())
        self._log.info(
            "partition online: log_start_offset={} log_end_offset={} high_watermark={}",
            log.log_start_offset,
            log.log_end_offset,
            self.high_watermark,
        )
        self._recovery_damage = log.recovery.damage if log.recovery is not None else None
        self._check_damage()  # recovery may have found some
        if self._counters is not None:
            self._counters.add("partition_logs_opened")

    def on_stop(self) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._forget_verifications(E.NOT_LEADER_OR_FOLLOWER)
        self._release_unacked()
        self._resign()
        if self.log is not None:
            try:
                self._save_high_watermark()
                self._write_snapshot()
                self.log.close()
                self._log.info("partition closed cleanly at {}", self.high_watermark)
            except Exception as e:  # noqa: BLE001
                self._log.error("close failed: {}", e)
            self.log = None

    def on_failure(self, exception_type, exception_value, traceback) -> None:
        self._log.opt(exception=(exception_type, exception_value, traceback)).error(
            "partition actor failed"
        )

    # ------------------------------------------------------------------------ replication

    def _apply_role(self, now: int) -> None:
        """Become (or stay) leader or follower as ``self.info`` says."""
        self._forget_lso()
        log = self.log
        if log is None:
            return
        info = self.info
        if info is None:  # the sole replica
            replicas = isr = (self.broker_id,)
            leader, epoch, pepoch = self.broker_id, self.leader_epoch, 0
        else:
            replicas, isr = tuple(info.replicas), tuple(info.isr)
            leader, epoch = info.leader, info.leader_epoch
            pepoch = getattr(info, "partition_epoch", 0)
        config = RC.ReplicationConfig(
            replica_lag_time_max_ms=self.lag_ms, min_insync_replicas=self.min_insync_replicas
        )
        if self.leader is not None:
            if leader == self.broker_id and epoch == self.leader.leader_epoch:
                self.leader.config = config
                self._carry_out(
                    self.leader.on_partition_change(
                        leader=leader,
                        isr=isr,
                        leader_epoch=epoch,
                        partition_epoch=pepoch,
                        replicas=replicas,
                        now_ms=now,
                    )
                )
                # idle followers with a fetch session do not fetch again: check them now
                # (an ISR change resolved the pending proposal; a reassignment added one)
                self._refresh_watched_followers()
                return
            self._carry_out(
                self.leader.on_partition_change(
                    leader=leader, isr=isr, leader_epoch=epoch, partition_epoch=pepoch, now_ms=now
                )
            )
            self.leader = None
            self._drop_watches(E.NOT_LEADER_OR_FOLLOWER)
            self._forget_verifications(E.NOT_LEADER_OR_FOLLOWER)
            self._log.info("resigned as leader (new leader {} epoch {})", leader, epoch)
        self.leader_epoch = max(self.leader_epoch, epoch)
        if leader != self.broker_id:
            self.follower_epoch = epoch if leader >= 0 else -1
            self._drop_consumer_waiters()
            return
        self.follower_epoch = -1
        if epoch < log.epochs.latest_epoch:
            self._log.warning("metadata names an old leader epoch {}; not leading", epoch)
            return
        log.epochs.assign(epoch, log.log_end_offset)
        self.leader = RC.LeaderReplica(
            self.broker_id,
            replicas=replicas,
            isr=isr,
            leader_epoch=epoch,
            partition_epoch=pepoch,
            log_end_offset=log.log_end_offset,
            high_watermark=self.high_watermark,
            now_ms=now,
            config=config,
        )
        if info is not None:
            self._log.info(
                "leader at epoch {} (isr {}, log_end_offset {}, high_watermark {})",
                epoch,
                list(isr),
                log.log_end_offset,
                self.high_watermark,
            )
        self._carry_out(self.leader.on_append(log.log_end_offset, now))

    def _carry_out(self, progress: RC.Progress) -> None:
        if progress.completions:
            for c in progress.completions:
                entry = self._acks.pop(c.key, None)
                if entry is None:
                    continue
                reply, response = entry
                if c.error != RC.NONE:
                    response = P.ProducePartitionResponse(
                        partition=self.partition,
                        error_code=code_of(c.error),
                        base_offset=response.base_offset if c.error.endswith("APPEND") else -1,
                        error_message=f"acks=all: {c.error}",
                    )
                self._reply(reply, response)
        if progress.propose is not None and self.send_alter is not None:
            proposal = progress.propose
            me = self.actor_ref

            def answered(error: str, proposal=proposal) -> None:
                try:
                    me.tell(AlterPartitionAnswer(proposal, error))
                except pykka.ActorDeadError:
                    pass

            try:
                self.send_alter(self.topic, self.partition, proposal, answered)
            except Exception:  # noqa: BLE001 - re-sent by the next tick
                self._log.exception("could not send AlterPartition")
        if progress.high_watermark_changed and progress.high_watermark > self.high_watermark:
            self.high_watermark = progress.high_watermark
            self.pstate.on_high_watermark_updated(self.high_watermark)  # the LSO may move
            self._serve_waiters()

    def _save_high_watermark(self) -> None:
        if self.log is None or self.high_watermark == self._hw_saved:
            return
        if self._hw_sink is not None:
            with self._claim.lock:  # the node drops a deleted partition's entry under it
                if self._claim.deleted:
                    return
                self._hw_sink[(self.topic, self.partition)] = self.high_watermark
            self._hw_saved = self.high_watermark
            return
        try:
            self.log.fs.write_checkpoint(self.directory / HW_FILE, self.high_watermark)
            self._hw_saved = self.high_watermark
        except Exception as e:  # noqa: BLE001
            self._log.error("high watermark checkpoint failed: {}", e)

    # ------------------------------------------------------------- producer-state snapshots

    def _snapshot_due(self, log) -> bool:
        """The state changed since the last snapshot and the log rolled since."""
        return (
            log.segments[-1].base_offset != self._snapshot_segment
            and self.snapshots.pending(self.pstate)
        )

    def _write_snapshot(self, durable: bool = True) -> None:
        if self.log is None:
            return
        try:
            self.snapshots.write(self.pstate, self.log.log_end_offset, durable=durable)
        except Exception as e:  # noqa: BLE001
            self._log.error("producer state snapshot failed: {}", e)

    # ---------------------------------------------------------------------------- dispatch

    def on_receive(self, message: object) -> object:
        result = None
        try:
            match message:
                case Append():
                    self._append(message)
                case TxnVerified():
                    self._verification_done(message)  # partition_txn.py
                case WriteMarker():
                    self._write_marker(message)
                case Read():
                    self._read(message)
                case ListOffset():
                    self._list_offset(message)
                case Tick(now_ms=now):
                    self._tick(now)
                case Housekeep(now_ms=now):
                    self._housekeep(now)
                case ExpireProducers(now_ms=now):
                    self._expire_producers(now)
                case Reconfigure(config=config):
                    self._reconfigure(config)
                case Delete(directory=directory):
                    self._delete(directory)
                case LeaderEpoch(leader_epoch=epoch):
                    self.leader_epoch = max(self.leader_epoch, epoch)
                case PartitionChanged(info=info, min_insync_replicas=m):
                    self.info, self.min_insync_replicas = info, m
                    self._apply_role(self.clock())
                    self._heal()
                case DeleteRecords():
                    delete_on_leader(self, message)  # delete_records.py
                case DescribeLog():
                    describe_on_replica(self, message)  # log_dirs.py
                case Scrub():
                    self._scrub(message)
                case DamageAnswer():
                    self._damage_answer(message)
                case EpochEndOffset():
                    self._epoch_end_offset(message)
                case AlterPartitionAnswer(proposal=proposal, error=error):
                    if self.leader is not None:
                        self._carry_out(
                            self.leader.on_alter_partition_response(proposal, error, self.clock())
                        )
                        self._refresh_watched_followers()  # an expansion may be possible now
                case FollowerState(leader_epoch=epoch):
                    result = self._follower_state(epoch)
                case FollowerTruncate():
                    result = self._follower_truncate(message)
                case FollowerAppend():
                    result = self._follower_append(message)
                case FollowerReset(leader_epoch=epoch, offset=offset):
                    if self._is_follower_of(epoch):
                        self._forget_lso()
                        self.log.truncate_fully_and_start_at(offset)
                        self.pstate = PS.ProducerStateManager(offset)
                        self.snapshots.delete_above(-1)
                        self.high_watermark = offset
                        result = offset
                case _:
                    self._log.warning("ignoring unknown message {!r}", type(message).__name__)
        except Exception as e:  # noqa: BLE001 - poison message: answer (if we can) and carry on
            if isinstance(message, FollowerState | FollowerTruncate | FollowerAppend):
                raise  # the fetcher's ask gets it and starts over with truncation
            self._log.exception("failed handling {}", type(message).__name__)
            self._answer_error(message, error_code_for(e))
        if self._unacked and self.actor_inbox.empty():
            self._group_commit()
        if self._schedule is not None:
            self._save_high_watermark()
            self._arm()
        return result

    # ----------------------------------------------------------------------------- timers

    def _next_due(self, now: int, bound: int | None = None) -> int | None:
        """When this replica next has timed work, or None (an idle replica sleeps).

        With ``bound`` (the wake-up already armed), a due time at or after it need not be
        known exactly: the checks behind such a time are skipped (``_arm`` runs after every
        message, and the ISR and snapshot checks were a tenth of a spread produce's turns)."""
        # A parked fetch needs no wake-up: the session answers it at its own deadline, and
        # an expired waiter is dropped at the next park (partition_fetch.py).
        due: list[int] = []
        leader, log = self.leader, self.log
        if leader is not None:
            if leader.pending is not None:
                due.append(now + self._tick_ms)  # AlterPartition re-sends
            else:
                deadline = leader.purgatory.next_deadline()
                if deadline is not None:
                    # acks=all timeouts: at the earliest deadline (Kafka's purgatory timer),
                    # not every tick while produces wait (5 wake-ups a second per partition)
                    due.append(deadline)
                if len(leader.replicas) > 1 and (
                        bound is None or self._next_isr_check < bound
                ) and not leader.in_sync_and_idle:
                    # Kafka: every replica.lag.time.max.ms / 2; an idle leader whose followers
                    # all have its LEO sleeps until the next append (issue #12: thousands of
                    # idle leaders would otherwise wake a few hundred times a second)
                    due.append(self._next_isr_check)
        verifying = self._verification_due()  # a parked transactional produce
        if verifying is not None:
            due.append(verifying)
        damage = self._damage_due()  # an unacknowledged ReplicaDamage re-send
        if damage is not None:
            due.append(damage)
        if log is not None:
            flush = log.next_flush_due_ms()
            if flush is not None:
                # on the log.flush.scheduler.interval.ms grid of the broker's clock, as
                # Kafka's log flusher checks every log on that interval: the replicas due in
                # one interval wake together (one ticker wake-up, one syncfs round) instead
                # of one wake-up each (3,000 a second for 3,000 written partitions); a
                # flush.ms shorter than the interval is its own grid
                grid = min(self._tick_ms, log.config.flush_ms)
                due.append(-(-flush // grid) * grid)
            snapshot_at = self._snapshot_at + SNAPSHOT_INTERVAL_MS
            if (bound is None or snapshot_at < bound) and self._snapshot_due(log):
                due.append(snapshot_at)
        return min(due) if due else None

    def _arm(self) -> None:
        now = self.clock()
        due = self._next_due(now, self._wake_at)
        if due is None or (self._wake_at is not None and self._wake_at <= due):
            return
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = due
        ref = self.actor_ref

        def wake() -> None:
            try:
                ref.tell(Tick(self.clock()))
            except pykka.ActorDeadError:
                pass

        self._wake = self._schedule(max(0, due - now) / 1000, wake)

    def _answer_error(self, message: object, code: int) -> None:
        try:
            if isinstance(message, Append) and message.reply:
                message.reply(P.ProducePartitionResponse(partition=self.partition, error_code=code))
            elif isinstance(message, Read):
                message.reply(P.FetchPartitionResponse(partition=self.partition, error_code=code))
            elif isinstance(message, ListOffset):
                message.reply(
                    P.ListOffsetsPartitionResponse(partition=self.partition, error_code=code)
                )
            elif isinstance(message, WriteMarker):
                message.reply(code)
            elif isinstance(message, DeleteRecords):
                message.reply(P.DeleteRecordsPartitionResponse(partition=self.partition,
                                                               error_code=code))
            elif isinstance(message, DescribeLog):
                message.reply(P.DescribeLogDirsPartition(partition=self.partition, size=0))
        except Exception:  # noqa: BLE001
            self._log.exception("could not answer a failed message")

    # ------------------------------------------------------------------------ housekeeping

    def _tick(self, now: int) -> None:
        self._wake = self._wake_at = None
        if self.leader is not None and now >= self._next_isr_check:
            self._next_isr_check = now + max(1, self.lag_ms // 2)
        if self._waiters:
            self._waiters = [w for w in self._waiters if w.deadline_ms > now]
        if self._verifying:
            self._expire_verifications(now)  # partition_txn.py
        if self.leader is not None:
            self._refresh_watched_followers()  # partition_fetch.py: fetch sessions
            self._carry_out(self.leader.tick(now))
        if self.log is not None and self.log.damage is not None:
            self._send_damage(now)
        self._save_high_watermark()
        if (
            now - self._snapshot_at >= SNAPSHOT_INTERVAL_MS
            and self.log is not None
            and self._snapshot_due(self.log)
        ):
            self._snapshot_at = now
            self._snapshot_segment = self.log.segments[-1].base_offset
            self._write_snapshot(durable=False)  # periodic: see ProducerSnapshots.write
        # due work of the log: an fsync of unflushed appends, or the recovery-point
        # checkpoint that trails a flush by up to a minute. (Checking only `unflushed` left
        # a flushed log whose checkpoint was due asking for a wake-up at once, forever: an
        # idle broker spun its ticker and io lane at 100% CPU a minute after any write.)
        due = self.log.next_flush_due_ms() if self.log is not None else None
        if due is not None and due <= now:
            try:
                self.log.maybe_flush(now)
            except Exception as e:  # noqa: BLE001
                self._log.error("flush failed: {}", e)

    def _housekeep(self, now: int) -> None:
        log = self.log
        if log is None:
            return
        # retention below the HW, then compaction below the LSO (logstore/housekeeping.py)
        done = housekeep(log, self.pstate, self.high_watermark, now)
        if done.segments_deleted:
            self._forget_lso()
            self._log.info(
                "retention deleted {} segment(s); log_start_offset={}",
                done.segments_deleted,
                done.log_start_offset,
            )
        if done.compaction is not None:
            self._log.debug("compaction: {}", done.compaction)

    def _expire_producers(self, now: int) -> None:
        """producer.id.expiration.ms: drop idempotent producers whose last batch is older
        (Kafka's rule: measured from the batch's timestamp). The next snapshot leaves them out."""
        gone = self.pstate.remove_expired(now, self.producer_id_expiration_ms)
        if gone:
            self._log.info("forgot {} idle producer id(s): {}", len(gone), gone[:10])

    def _resign(self) -> None:
        """Stop leading: waiting acks=all produces are answered (not leader) and the leader
        state is dropped."""
        if self.leader is not None:
            self._carry_out(
                self.leader.on_partition_change(
                    leader=-1, isr=(), leader_epoch=-1, partition_epoch=0, now_ms=self.clock()
                )
            )
            self.leader = None
            self._drop_watches(E.NOT_LEADER_OR_FOLLOWER)
            self._forget_verifications(E.NOT_LEADER_OR_FOLLOWER)

    def _reconfigure(self, config: LogConfig) -> None:
        if config == self.config:
            return
        if self._unacked:
            self._group_commit()
        if self.log is not None:
            self.log.close()
        self.config = config
        self._log.info("config changed; reopening log")
        self._resign()  # reopened below as a new LeaderReplica of the same epoch
        self._save_high_watermark()
        self._open()
        self._serve_waiters()

    def _delete(self, directory: Path | None) -> None:
        self._release_unacked()
        self._resign()
        if self.log is not None:
            self.log.abandon()  # no more writes: the path may already hold a new topic
            self.log = None
        if directory is not None:  # renamed aside by the node: never the live path
            shutil.rmtree(directory, ignore_errors=True)
        self._log.info("partition deleted")
        self.stop()
