"""The five leader APIs of share groups, served by the SharePartitionManager (mixed in; runs
on its thread): ShareFetch (a long poll), ShareAcknowledge, DescribeShareGroupOffsets,
AlterShareGroupOffsets and DeleteShareGroupOffsets. docs/protocol.md has their fields.

A ShareFetch is a ``_FetchOp``: per partition it applies the acknowledgements it carries,
then reads from the partition (the local replica's consumer read path, read_uncommitted,
below the high watermark) starting at the first offset it could acquire, and acquires at
most ``max_records`` records that the read returned. With nothing acquired anywhere it parks
until records arrive, are released, or a delay passes, or ``max_wait_ms`` ends. It is
answered once every acknowledgement it carried is durable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka
from rillet.coordinator.share.partition import Ack, Changes, SharePartition, ShareStateError
from rillet.logstore import batch as B
from rillet.transport import protocol as P

from . import partition as R

E = P.ErrorCode
MAX_WAIT_MS = 300_000
FIRST_READ_BYTES = 1 << 20  # a share-partition's first read (its record size is unknown)
MIN_READ_BYTES = 64 << 10


class _Part:
    __slots__ = ("topic", "partition", "sp", "error_code", "error_message", "ack_code",
                 "ack_message", "records", "acquired")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition
        self.sp = None
        self.error_code, self.error_message = E.NONE, None
        self.ack_code, self.ack_message = E.NONE, None
        self.records: list[bytes] = []
        self.acquired: list = []


class _FetchOp:
    __slots__ = ("req", "respond", "deadline", "parts", "pending", "writes", "parked",
                 "done", "expired")

    def __init__(self, req: P.ShareFetchRequest, respond, deadline: int) -> None:
        self.req, self.respond, self.deadline = req, respond, deadline
        self.parts: list[_Part] = []
        self.pending = 0  # loads and reads not answered yet
        self.writes = 0  # acknowledgement writes not durable yet
        self.parked = False
        self.done = False
        self.expired = False


def _acks(batches) -> list[Ack]:
    return [Ack(b.first_offset, b.last_offset, tuple(b.acknowledge_types), b.delay_ms,
                b.reason) for b in batches]


def _duplicates(topics) -> bool:
    keys = [(t.name, p.partition) for t in topics for p in t.partitions]
    return len(set(keys)) != len(keys)


def _bad(req: Any) -> str | None:
    if not req.group_id:
        return "group_id must not be empty"
    if isinstance(req, P.ShareFetchRequest | P.ShareAcknowledgeRequest):
        if not req.member_id:
            return "member_id must not be empty"
        if _duplicates(req.topics):
            return f"{req.API} names a topic-partition more than once"
    if isinstance(req, P.ShareFetchRequest) and req.max_records < 0:
        return "max_records must be >= 0"
    if isinstance(req, P.ShareFetchRequest) and req.acquire_mode not in (0, 1):
        return (f"acquire_mode {req.acquire_mode}: 0 (batch_optimized) or 1 (record_limit)")
    return None


class ShareRequests:
    """Mixin of SharePartitionManager (see actors/share_partition.py)."""

    parked_ops: set

    def handle(self, req: Any, respond: Callable[[object], None]) -> None:
        problem = _bad(req)
        if problem is not None:
            respond(_error(req, E.INVALID_REQUEST, problem))
            return
        match req:
            case P.ShareFetchRequest():
                self._share_fetch(req, respond)
            case P.ShareAcknowledgeRequest():
                self._share_acknowledge(req, respond)
            case P.DescribeShareGroupOffsetsRequest():
                self._describe(req, respond)
            case P.AlterShareGroupOffsetsRequest():
                self._alter(req, respond)
            case P.DeleteShareGroupOffsetsRequest():
                self._delete(req, respond)
            case _:
                respond(P.ErrorResponse(error_code=E.INVALID_REQUEST,
                                        error_message=f"{req.API} not handled"))

    # ------------------------------------------------------------------------- ShareFetch

    def _share_fetch(self, req: P.ShareFetchRequest, respond) -> None:
        wait = min(max(req.max_wait_ms, 0), MAX_WAIT_MS)
        op = _FetchOp(req, respond, self.clock() + wait)
        for t in req.topics:
            for p in t.partitions:
                part = _Part(t.name, p.partition)
                op.parts.append(part)
                code, sp = self.share_partition(req.group_id, t.name, p.partition)
                if sp is None:
                    part.error_code = code
                    _acks_not_applied(part, p, code)
                    continue
                part.sp = sp
                op.pending += 1
                self.when_ready(sp, lambda c, part=part, p=p: self._fetch_ready(op, part, p, c))
        self._settle(op)

    def _fetch_ready(self, op: _FetchOp, part: _Part, p: P.ShareFetchPartition, code: int):
        op.pending -= 1
        if code != E.NONE:
            part.error_code = code
            _acks_not_applied(part, p, code)
        else:
            if p.acknowledgement_batches:
                self._acknowledge(part.sp, op.req.member_id, p.acknowledgement_batches,
                                  lambda c, m: self._fetch_acked(op, part, c, m), op)
            if op.req.max_records > 0:
                self._read(op, part)
        self._settle(op)

    def _fetch_acked(self, op: _FetchOp, part: _Part, code: int, message: str | None) -> None:
        part.ack_code, part.ack_message = code, message
        op.writes -= 1
        self._settle(op)

    def _acknowledge(self, sp, member_id: str, batches, answer, op: _FetchOp | None = None):
        """Apply acknowledgements; ``answer(error, message)`` once durable (or refused)."""
        core: SharePartition | None = sp.core
        if op is not None:
            op.writes += 1
        if core is None:
            answer(E.INVALID_RECORD_STATE, f"member {member_id!r} holds no records of "
                   f"{sp.key[1]}-{sp.key[2]} in group {sp.key[0]!r}")
            return
        try:
            changes = core.acknowledge(member_id, _acks(batches), self.clock(), self.rng.random())
        except ShareStateError as e:
            answer(P.code_of(e.code), str(e))
            return
        self.apply(sp, changes, lambda c: answer(c, None))

    def _read(self, op: _FetchOp, part: _Part) -> None:
        sp = part.sp
        ref = self.ctx.replicas.get((part.topic, part.partition))
        if ref is None or sp.core is None:
            part.error_code = E.NOT_LEADER_OR_FOLLOWER
            return
        start = sp.core.next_fetch_offset(self.clock())
        op.pending += 1
        # read about what max_records records take (a 50 MB read to hand out 500 records
        # would cost more than everything else): twice the bytes per record seen so far
        if sp.record_bytes > 0:
            want = max(MIN_READ_BYTES, int(sp.record_bytes * op.req.max_records * 2))
        else:
            want = FIRST_READ_BYTES
        try:
            ref.tell(R.Read(start, max(1, min(op.req.max_bytes, want)),
                            reply=self.call(self._read_done, op, part, start), on_data=None))
        except pykka.ActorDeadError:  # the replica is going away (deleted, stopping)
            op.pending -= 1
            part.error_code = E.NOT_LEADER_OR_FOLLOWER

    def _read_done(self, op: _FetchOp, part: _Part, start: int, r: P.FetchPartitionResponse):
        op.pending -= 1
        sp = part.sp
        if op.done:
            return
        if sp.status != "ready":
            part.error_code = E.NOT_LEADER_OR_FOLLOWER
        elif (r.error_code == E.OFFSET_OUT_OF_RANGE and r.log_start_offset > start
              and sp.core.skip_to(r.log_start_offset).dirty):
            # retention removed records the share-partition had not finished: skip them
            self._log.info("share-partition {}: records below {} are gone from the log",
                           sp.key, r.log_start_offset)
            self.apply(sp, Changes(dirty=True))
            self._read(op, part)
        elif r.error_code != E.NONE:
            part.error_code = r.error_code
        else:
            sp.hw = r.high_watermark
            batches = list(B.iter_batches(r.records, validate=False))
            until = batches[-1][0].next_offset if batches else start
            if batches:
                count = until - batches[0][0].base_offset
                sp.record_bytes = len(r.records) / max(1, count)
            # only what this read returned: [start, until), below the high watermark
            ends = [b[0].next_offset for b in batches] if op.req.acquire_mode == 0 else ()
            got = sp.core.acquire(op.req.member_id, min(r.high_watermark, until),
                                  op.req.max_records, self.clock(), from_offset=start,
                                  batch_ends=ends)
            if got:
                part.acquired.extend(got)
                part.records.append(_covering(batches, got))
        self._settle(op)

    def _settle(self, op: _FetchOp) -> None:
        if op.done or op.pending > 0:
            return
        got = any(p.acquired for p in op.parts)
        waiting_parts = [p for p in op.parts if p.sp is not None and p.error_code == E.NONE]
        if (not got and not op.expired and op.req.max_records > 0 and waiting_parts
                and self.clock() < op.deadline):
            if not op.parked:
                self._park(op, waiting_parts)
            return
        if op.writes > 0:
            return  # answered when the acknowledgements it carried are durable
        self._unpark(op)
        op.done = True
        op.respond(_fetch_response(op))

    def _park(self, op: _FetchOp, parts: list[_Part]) -> None:
        op.parked = True
        self.parked_ops.add(op)
        for part in parts:
            part.sp.parked.add(op)
            self.watch(part.sp)

    def _unpark(self, op: _FetchOp) -> None:
        if not op.parked:
            return
        op.parked = False
        self.parked_ops.discard(op)
        for part in op.parts:
            if part.sp is not None:
                part.sp.parked.discard(op)

    def wake(self, sp) -> None:
        """Records may be acquirable in ``sp``: its parked fetches try again."""
        for op in list(sp.parked):
            self._unpark(op)
            for part in op.parts:
                if part.sp is not None and part.error_code == E.NONE:
                    self._read(op, part)
            self._settle(op)

    def partition_failed(self, op: _FetchOp, sp, code: int) -> None:
        for part in op.parts:
            if part.sp is sp:
                part.error_code = code
        self._unpark(op)
        self._settle(op)

    def expire_parked(self, now: int) -> None:
        for op in list(self.parked_ops):
            if now >= op.deadline:
                op.expired = True
                self._unpark(op)
                self._settle(op)

    # -------------------------------------------------------------------- ShareAcknowledge

    def _share_acknowledge(self, req: P.ShareAcknowledgeRequest, respond) -> None:
        results: dict[tuple[str, int], int] = {}
        order = [(t.name, p.partition) for t in req.topics for p in t.partitions]
        pending = [len(order)]

        def put(key: tuple[str, int], code: int, _message: str | None = None) -> None:
            results[key] = code
            pending[0] -= 1
            if pending[0] == 0:
                respond(P.ShareAcknowledgeResponse(results=_grouped(order, results)))

        if not order:
            respond(P.ShareAcknowledgeResponse())
            return
        for t in req.topics:
            for p in t.partitions:
                key = (t.name, p.partition)
                err, sp = self.share_partition(req.group_id, t.name, p.partition)
                if sp is None:
                    put(key, err)
                    continue

                def loaded(c: int, sp=sp, p=p, key=key) -> None:
                    if c != E.NONE:
                        put(key, c)
                    else:
                        self._acknowledge(sp, req.member_id, p.acknowledgement_batches,
                                          lambda code, m, key=key: put(key, code, m))

                self.when_loaded(sp, loaded)

    # ------------------------------------------------------------- share offsets (admin)

    def _describe(self, req: P.DescribeShareGroupOffsetsRequest, respond) -> None:
        keys = [(t.topic, p) for t in req.topics for p in t.partitions]
        out: dict[tuple[str, int], P.DescribedSharePartition] = {}

        def put(key, described) -> None:
            out[key] = described
            if len(out) == len(set(keys)):
                respond(P.DescribeShareGroupOffsetsResponse(
                    partitions=tuple(out[k] for k in dict.fromkeys(keys))))

        if not keys:
            respond(P.DescribeShareGroupOffsetsResponse())
            return
        for key in dict.fromkeys(keys):
            code, sp = self.share_partition(req.group_id, *key)
            if sp is None:
                put(key, P.DescribedSharePartition(topic=key[0], partition=key[1],
                                                   error_code=code))
                continue

            def with_hw(r, sp=sp, key=key) -> None:
                if r.error_code != E.NONE:
                    put(key, P.DescribedSharePartition(topic=key[0], partition=key[1],
                                                       error_code=r.error_code))
                elif sp.core is None:  # nothing stored: the group never fetched here
                    put(key, P.DescribedSharePartition(topic=key[0], partition=key[1],
                                                       high_watermark=r.offset,
                                                       lag=0))
                else:
                    d = sp.core.describe(r.offset, self.clock())
                    put(key, P.DescribedSharePartition(
                        topic=key[0], partition=key[1], start_offset=d.start_offset,
                        end_offset=d.end_offset, high_watermark=d.high_watermark, lag=d.lag,
                        available=d.available, delayed=d.delayed, acquired=d.acquired,
                        acknowledged=d.acknowledged, archived=d.archived,
                        dead_lettered=d.dead_lettered,
                        delivery_counts=tuple(P.DeliveryCount(delivery_count=c, records=n)
                                              for c, n in d.delivery_counts)))

            def loaded(c: int, sp=sp, key=key, with_hw=with_hw) -> None:
                if c != E.NONE:
                    put(key, P.DescribedSharePartition(topic=key[0], partition=key[1],
                                                       error_code=c))
                else:
                    self.list_offset(sp, P.LATEST_TIMESTAMP, self.call(with_hw))

            self.when_loaded(sp, loaded)

    def _alter(self, req: P.AlterShareGroupOffsetsRequest, respond) -> None:
        items = [(t.name, p.partition, p.start_offset) for t in req.topics for p in t.partitions]
        self._per_partition(req.group_id, [(t, p) for t, p, _ in items],
                            lambda sp, put, i=dict(((t, p), o) for t, p, o in items):
                            self._reset(sp, i[sp.key[1:]], put),
                            lambda results: respond(P.AlterShareGroupOffsetsResponse(
                                results=results)))

    def _reset(self, sp, offset: int, put: Callable[[int], None]) -> None:
        if sp.core is not None and sp.core.holders():
            put(E.NON_EMPTY_GROUP)
            return
        if offset < -2:
            put(E.INVALID_REQUEST)
            return

        def at(start: int) -> None:
            group, topic, partition = sp.key
            if sp.core is None:
                sp.core = SharePartition(group, topic, partition, sp.config, start)
            else:
                try:
                    sp.core.reset(start)
                except ShareStateError as e:
                    put(P.code_of(e.code))
                    return
            sp.status = "ready"
            sp.replace_next = True
            self.apply(sp, Changes(dirty=True), put)

        if offset >= 0:
            at(offset)
            return

        def resolved(r) -> None:
            if r.error_code != E.NONE:
                put(r.error_code)
            elif sp.status in ("ready", "fresh"):
                at(r.offset)
            else:
                put(E.NOT_LEADER_OR_FOLLOWER)

        ts = P.EARLIEST_TIMESTAMP if offset == -2 else P.LATEST_TIMESTAMP
        self.list_offset(sp, ts, self.call(resolved))

    def _delete(self, req: P.DeleteShareGroupOffsetsRequest, respond) -> None:
        keys = [(t.topic, p) for t in req.topics for p in t.partitions]

        def delete(sp, put: Callable[[int], None]) -> None:
            if sp.core is not None and sp.core.holders():
                put(E.NON_EMPTY_GROUP)
                return
            group, topic, partition = sp.key
            request = P.WriteShareGroupStateRequest(
                group_id=group, topic=topic, partition=partition, state_epoch=sp.state_epoch,
                leader_epoch=sp.leader_epoch, start_offset=-1, delete=True)

            def written(r) -> None:
                if r.error_code == E.NONE:
                    self.drop(sp, E.NOT_LEADER_OR_FOLLOWER)
                put(r.error_code)

            self.persister.write(request, self.call(written))

        self._per_partition(req.group_id, keys, delete, lambda results: respond(
            P.DeleteShareGroupOffsetsResponse(results=results)))

    def _per_partition(self, group: str, keys, action, finish) -> None:
        """``action(sp, put)`` on each loaded share-partition; ``finish(results)`` once all
        put their error code."""
        order = list(dict.fromkeys(keys))
        results: dict[tuple[str, int], int] = {}

        def put(key, code: int) -> None:
            results[key] = code
            if len(results) == len(order):
                finish(_grouped(order, results))

        if not order:
            finish(())
            return
        for key in order:
            err, sp = self.share_partition(group, *key)
            if sp is None:
                put(key, err)
                continue
            self.when_loaded(sp, lambda c, sp=sp, key=key: put(key, c) if c != E.NONE
                             else action(sp, lambda code, key=key: put(key, code)))


def _acks_not_applied(part: _Part, p: P.ShareFetchPartition, code: int) -> None:
    """The acknowledgements a fetch carried for a partition it cannot serve were not applied:
    the answer says so in their own code (a client reads ``acknowledge_error_code`` for
    them, and a zero there would tell it they are durable)."""
    if p.acknowledgement_batches:
        part.ack_code = code
        part.ack_message = (f"acknowledgements of {part.topic}-{part.partition} not applied: "
                            f"{E(code).name if code in E._value2member_map_ else code}")


def _covering(batches, got) -> bytes:
    """The batches (as stored) that hold an acquired offset: the client gets no others."""
    keep = []
    i = 0
    for header, view in batches:
        while i < len(got) and got[i].last_offset < header.base_offset:
            i += 1
        if i == len(got):
            break
        if got[i].first_offset <= header.last_offset:
            keep.append(view)
    return b"".join(keep)


def _grouped(order, results) -> tuple[P.TopicPartitionErrors, ...]:
    by_topic: dict[str, list[P.PartitionError]] = {}
    for topic, partition in order:
        by_topic.setdefault(topic, []).append(
            P.PartitionError(partition=partition, error_code=results[(topic, partition)]))
    return tuple(P.TopicPartitionErrors(name=t, partitions=tuple(ps))
                 for t, ps in by_topic.items())


def _error(req: Any, code: int, message: str) -> object:
    response_type = P.RESPONSES.get(req.API)
    try:
        return response_type(error_code=code, error_message=message)
    except TypeError:
        return P.ErrorResponse(error_code=code, error_message=message)


def _fetch_response(op: _FetchOp) -> P.ShareFetchResponse:
    topics: dict[str, list[P.ShareFetchPartitionResponse]] = {}
    for part in op.parts:
        sp = part.sp
        topics.setdefault(part.topic, []).append(P.ShareFetchPartitionResponse(
            partition=part.partition,
            error_code=part.error_code,
            error_message=part.error_message,
            acknowledge_error_code=part.ack_code,
            acknowledge_error_message=part.ack_message,
            leader_epoch=sp.leader_epoch if sp is not None else -1,
            records=b"".join(part.records) if part.error_code == E.NONE else b"",
            acquired_records=tuple(
                P.AcquiredRecords(first_offset=a.first_offset, last_offset=a.last_offset,
                                  delivery_count=a.delivery_count)
                for a in part.acquired) if part.error_code == E.NONE else (),
        ))
    lock_ms = next((p.sp.config.record_lock_duration_ms for p in op.parts if p.sp), 0)
    return P.ShareFetchResponse(
        acquisition_lock_timeout_ms=lock_ms,
        topics=tuple(P.ShareFetchTopicResponse(name=t, partitions=tuple(ps))
                     for t, ps in topics.items()),
    )
