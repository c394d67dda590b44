"""Fetch on the leader: consumer reads below the high watermark (read_committed: below the
last stable offset, with the aborted transactions of what they read), follower fetches up to
the log end offset (which move the ISR and the high watermark), parked long-poll waiters,
ListOffsets and OffsetForLeaderEpoch."""

from __future__ import annotations

from rillet.coordinator import replication as RC
from rillet.logstore import batch as B
from rillet.logstore import transactions as T
from rillet.transport import protocol as P

from .partition_messages import (
    EpochEndOffset,
    ListOffset,
    Read,
    _Waiter,
    _Watched,
    code_of,
    error_code_for,
)
from .runtime import in_inline_turn

E = P.ErrorCode


class FetchSide:
    """Mixed into ``PartitionReplica`` (actors/partition.py): runs on its thread, uses its
    state."""

    # ------------------------------------------------------------------------------- fetch

    def _fetchable_end(self, isolation_level: int) -> int:
        """Where a consumer's reads stop: the high watermark, or for read_committed the
        last stable offset (logstore/transactions.py)."""
        if isolation_level == P.READ_COMMITTED:
            return self._last_stable_offset()
        return self.high_watermark

    def _last_stable_offset(self) -> int:
        """``transactions.last_stable_offset``, remembered until the producer state or the
        high watermark changes: it is a pass over every producer (hundreds of microseconds
        with thousands of idempotent producers), and every fetch answer carries it. On the
        leader every change of the producer state moves ``map_end_offset`` (appends,
        markers) or the high watermark (``on_high_watermark_updated``); what can move it
        back (truncation, a new state, a role change) calls ``_forget_lso``."""
        p = self.pstate
        start = self.log.log_start_offset if self.log is not None else 0
        key = (id(p), p.map_end_offset, self.high_watermark, len(p.unreplicated), start)
        cached = self._lso_cached
        if cached is not None and cached[0] == key:
            return cached[1]
        lso = T.last_stable_offset(p, self.high_watermark, start)
        self._lso_cached = (key, lso)
        return lso

    def _forget_lso(self) -> None:
        self._lso_cached = None

    def _fetch_response(
        self,
        fetch_offset: int,
        max_bytes: int,
        follower: bool = False,
        isolation_level: int = P.READ_UNCOMMITTED,
    ) -> P.FetchPartitionResponse:
        log = self.log
        if log is None:
            return P.FetchPartitionResponse(
                partition=self.partition, error_code=E.KAFKA_STORAGE_ERROR
            )
        lso = self._last_stable_offset()
        committed = isolation_level == P.READ_COMMITTED and not follower
        aborted = None
        try:
            limit = None if follower else lso if committed else self.high_watermark
            records = log.read(fetch_offset, max(max_bytes, 1), limit)
            code = E.NONE
            if committed:
                aborted = self._aborted_in(fetch_offset, records, lso)
        except Exception as e:  # noqa: BLE001
            records, code = b"", error_code_for(e)
        if log.damage is not None and self._damage_noted != log.damage.offset:
            self._check_damage()  # this read found it (partition_damage.py)
        return P.FetchPartitionResponse(
            partition=self.partition,
            error_code=code,
            high_watermark=self.high_watermark,
            last_stable_offset=lso,
            log_start_offset=log.log_start_offset,
            records=records,
            aborted_transactions=aborted,
        )

    def _aborted_in(
        self, fetch_offset: int, records: bytes, lso: int
    ) -> tuple[P.AbortedTransaction, ...]:
        """The aborted transactions with data in what a read_committed fetch returns
        (``records``, read from ``fetch_offset``, all below ``lso``)."""
        if not records:
            return ()
        found = self.log.txn_index.aborted_transactions(fetch_offset, lso)
        if not found:
            return ()
        upper = lso
        for header, _ in B.iter_batches(records, validate=False):
            upper = header.next_offset
        return tuple(
            P.AbortedTransaction(producer_id=t.producer_id, first_offset=t.first_offset)
            for t in found
            if t.first_offset < upper
        )

    def _read(self, msg: Read) -> None:
        log = self.log
        if in_inline_turn() and log is not None and msg.fetch_offset < log.active_segment.base_offset:
            # a read of an older segment may wait for the disk: on the io lane, not on the
            # sender's thread (a session's, which may be its listener's I/O thread)
            self.actor_ref.tell(msg)
            return
        follower = msg.replica_id >= 0
        if msg.watch is not None:  # named again in its session: this Read supersedes the watch
            self._watches.pop(msg.replica_id, None)
        if follower or (msg.current_leader_epoch >= 0 and self.info is not None):
            code = self._check_follower_fetch(msg) if follower else None
            if isinstance(code, tuple):  # KIP-320: the follower must truncate first
                epoch, end = code
                msg.reply(
                    P.FetchPartitionResponse(
                        partition=self.partition,
                        high_watermark=self.high_watermark,
                        log_start_offset=self.log.log_start_offset,
                        diverging_epoch=epoch,
                        diverging_end_offset=end,
                    )
                )
                return
            if code is None and msg.current_leader_epoch >= 0:
                fence = RC.check_leader_epoch(msg.current_leader_epoch, self.leader_epoch)
                code = None if fence == RC.NONE else code_of(fence)
            if code is not None:
                log = self.log
                msg.reply(
                    P.FetchPartitionResponse(
                        partition=self.partition,
                        error_code=code,
                        high_watermark=self.high_watermark,
                        log_start_offset=log.log_start_offset if log is not None else -1,
                    )
                )
                return
        if not follower and self.info is not None and self.leader is None:
            msg.reply(
                P.FetchPartitionResponse(
                    partition=self.partition, error_code=E.NOT_LEADER_OR_FOLLOWER
                )
            )
            return
        response = self._fetch_response(
            msg.fetch_offset, msg.max_bytes, follower, msg.isolation_level
        )
        msg.reply(response)
        if msg.watch is not None and follower and response.error_code == E.NONE:
            self._watches[msg.replica_id] = _Watched(
                msg.watch,
                fetch_offset=msg.fetch_offset,
                sent_until=self.log.log_end_offset if response.records else msg.fetch_offset,
                hw_sent=response.high_watermark,
                start_sent=response.log_start_offset,
                max_bytes=msg.max_bytes,
                leader_epoch=msg.current_leader_epoch,
                incarnation=msg.replica_incarnation,
            )
        if msg.on_data is not None and response.error_code == E.NONE and not response.records:
            if self._waiters:  # drop expired ones (their sessions answered at the deadline)
                now = self.clock()
                self._waiters = [w for w in self._waiters if w.deadline_ms > now]
            self._waiters.append(
                _Waiter(
                    msg.fetch_offset,
                    msg.max_bytes,
                    msg.on_data,
                    msg.deadline_ms,
                    follower,
                    msg.isolation_level,
                )
            )

    def _check_follower_fetch(self, msg: Read) -> int | tuple[int, int] | None:
        """A follower fetch on the leader: record its progress; an error code, the
        (epoch, end offset) it diverges at (KIP-320), or None."""
        leader, log = self.leader, self.log
        if leader is None or log is None:
            return E.NOT_LEADER_OR_FOLLOWER
        if self._refuse_as_damaged_leader():
            return E.KAFKA_STORAGE_ERROR
        decision = leader.on_follower_fetch(
            msg.replica_id,
            msg.fetch_offset,
            self.clock(),
            current_leader_epoch=msg.current_leader_epoch,
            log_start_offset=log.log_start_offset,
            incarnation=msg.replica_incarnation,
            last_fetched_epoch=msg.last_fetched_epoch,
            epochs=log.epochs,
        )
        self._carry_out(decision.progress)
        if decision.error != RC.NONE:
            return code_of(decision.error)
        return decision.diverging_epoch

    def _serve_waiters(self, followers_only: bool = False) -> None:
        if self._watches:
            self._serve_watches()
        if not self._waiters:
            return
        keep = []
        for w in self._waiters:
            if followers_only and not w.follower:
                keep.append(w)
                continue
            # read_committed waiters get records once the LSO passes them (a marker
            # replicated), not when the high watermark moves inside an open transaction
            response = self._fetch_response(
                w.fetch_offset, w.max_bytes, w.follower, w.isolation_level
            )
            # a follower also wants a new high watermark with no new records
            if response.records or response.error_code != E.NONE or w.follower:
                try:
                    w.on_data(response)
                except Exception:  # noqa: BLE001
                    self._log.exception("fetch waiter failed")
            else:
                keep.append(w)
        self._waiters = keep

    # ------------------------------------------------- fetch sessions (actors/fetch_session.py)

    def _serve_watches(self) -> None:
        """Tell watching follower sessions about records they were not sent (only once they
        fetched what they were sent before) or a high watermark they were not told."""
        log, key = self.log, (self.topic, self.partition)
        for replica_id, w in list(self._watches.items()):
            if log is None or self._refuse_as_damaged_leader():
                response = P.FetchPartitionResponse(
                    partition=self.partition, error_code=E.KAFKA_STORAGE_ERROR
                )
            elif w.sent_until == w.fetch_offset and log.log_end_offset > w.fetch_offset:
                response = self._fetch_response(w.fetch_offset, w.max_bytes, follower=True)
                if response.error_code == E.NONE and response.records:
                    w.sent_until = log.log_end_offset
                elif response.error_code == E.NONE and response.high_watermark == w.hw_sent:
                    continue
            elif self.high_watermark != w.hw_sent or log.log_start_offset > w.start_sent:
                response = P.FetchPartitionResponse(
                    partition=self.partition,
                    high_watermark=self.high_watermark,
                    last_stable_offset=self._fetchable_end(P.READ_COMMITTED),
                    log_start_offset=log.log_start_offset,
                )
            else:
                continue
            # records, an error or a new log start offset (the follower deletes below it at
            # once, docs/operations.md) answer a parked poll; a high watermark alone waits
            # for the partition's next records (fetch_session.ReplicaFetchSession.notify)
            urgent = (bool(response.records) or response.error_code != E.NONE
                      or response.log_start_offset > w.start_sent)
            w.hw_sent = response.high_watermark
            w.start_sent = max(w.start_sent, response.log_start_offset)
            kept = w.watch.session.notify(key, w.watch.generation, response, urgent)
            if not kept or response.error_code != E.NONE:
                del self._watches[replica_id]

    def _drop_watches(self, code: int) -> None:
        """Leaving this leader epoch: watching followers get ``code`` (they pause the
        partition and name it again, or follow the new leader)."""
        if not self._watches:
            return
        gone, self._watches = self._watches, {}
        key = (self.topic, self.partition)
        for w in gone.values():
            w.watch.session.notify(
                key,
                w.watch.generation,
                P.FetchPartitionResponse(partition=self.partition, error_code=code),
            )

    def _refresh_watched_followers(self) -> None:
        """Before an ISR check: a follower that polls its session without naming this
        partition is still fetching at the watched offset, as of its last poll."""
        leader, log, key = self.leader, self.log, (self.topic, self.partition)
        if leader is None or log is None:
            return
        for replica_id, w in list(self._watches.items()):
            as_of = w.watch.session.last_poll_for(key, w.watch.generation)
            if as_of is None:
                del self._watches[replica_id]
                continue
            follower = leader.followers.get(replica_id)
            if w.leader_epoch != leader.leader_epoch or follower is None:
                continue
            decision = leader.on_follower_fetch(
                replica_id,
                w.fetch_offset,
                max(as_of, follower.last_fetch_time_ms),
                current_leader_epoch=w.leader_epoch,
                log_start_offset=log.log_start_offset,
                incarnation=w.incarnation,
                watched=True,
            )
            self._carry_out(decision.progress)

    # ------------------------------------------------------------------------ list offsets

    def _list_offset(self, msg: ListOffset) -> None:
        log = self.log
        if log is None:
            code = E.KAFKA_STORAGE_ERROR
            msg.reply(P.ListOffsetsPartitionResponse(partition=self.partition, error_code=code))
            return
        ts = msg.timestamp
        if ts == P.EARLIEST_TIMESTAMP:
            offset = log.log_start_offset
        elif ts == P.LATEST_TIMESTAMP:
            offset = self._fetchable_end(msg.isolation_level)
        elif ts < 0:
            msg.reply(
                P.ListOffsetsPartitionResponse(
                    partition=self.partition, error_code=E.INVALID_REQUEST
                )
            )
            return
        else:
            found = log.offset_for_timestamp(ts)
            end = self._fetchable_end(msg.isolation_level)
            offset = -1 if found is None or found >= end else found
        msg.reply(
            P.ListOffsetsPartitionResponse(
                partition=self.partition,
                timestamp=ts if ts >= 0 and offset >= 0 else -1,
                offset=offset,
                leader_epoch=self.leader_epoch,
            )
        )

    def _epoch_end_offset(self, msg: EpochEndOffset) -> None:
        leader, log = self.leader, self.log
        if leader is None or log is None:
            msg.reply(
                P.EpochEndOffset(partition=self.partition, error_code=E.NOT_LEADER_OR_FOLLOWER)
            )
            return
        if self._refuse_as_damaged_leader():
            msg.reply(P.EpochEndOffset(partition=self.partition, error_code=E.KAFKA_STORAGE_ERROR))
            return
        error, epoch, end = RC.leader_epoch_end_offset(
            log.epochs,
            log.log_end_offset,
            leader_epoch=leader.leader_epoch,
            current_leader_epoch=msg.current_leader_epoch,
            requested_epoch=msg.leader_epoch,
        )
        msg.reply(
            P.EpochEndOffset(
                partition=self.partition,
                error_code=code_of(error),
                leader_epoch=epoch,
                end_offset=end,
            )
        )

    def _drop_consumer_waiters(self) -> None:
        if not self._waiters:
            return
        gone, self._waiters = self._waiters, []
        for w in gone:
            try:
                w.on_data(
                    P.FetchPartitionResponse(
                        partition=self.partition, error_code=E.NOT_LEADER_OR_FOLLOWER
                    )
                )
            except Exception:  # noqa: BLE001
                self._log.exception("fetch waiter failed")
