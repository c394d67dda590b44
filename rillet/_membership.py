"""Consumer-group membership (KIP-848): coordinator discovery, the heartbeat thread, and the
reconciliation the consumer performs in ``poll()``. See docs/consumer-groups.md.

Threads: a background *heartbeat thread* owns every ConsumerGroupHeartbeat (one in flight at a
time) and records what the coordinator wants (``target``); the *application thread* (inside
``Consumer.poll``) applies it: it commits and revokes what it owns but may not keep, starts
the newly assigned partitions, runs the listener callbacks, and then wakes the heartbeat
thread so the coordinator hears the new owned set at once (the revocation acknowledgement).
The two share a few fields under ``_lock``; nothing else is shared.

Heartbeats are long polls (docs/consumer-groups.md, "Latency"): each asks the coordinator to
hold the answer up to the heartbeat interval (``max_wait_ms``) while it has nothing new, so
a new assignment arrives when the coordinator decides it, not at the next interval. The next
heartbeat goes out one interval after the previous one was *sent* (at once after a held
answer), at once when the member epoch moved and there is nothing to reconcile, and at once
after the application reconciled. close() and the application interrupt a held heartbeat.

Safety (docs/groups.md, "two leases"): partitions are dropped without a commit
(``on_partitions_lost``) when the member is fenced or unknown, when no heartbeat succeeded
for ``session.timeout.ms`` since it was sent, or when the application did not poll for
``max.poll.interval.ms`` (the member then leaves the group, like Kafka's consumer). After a
loss the member rejoins with epoch 0 only once the application has dropped the partitions.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from rillet._network import NetworkClient, map_error
from rillet.errors import (
    CommitFailedError,
    GroupMembershipError,
    IllegalStateError,
    RilletError,
    RilletTimeoutError,
    error_for_code,
)
from rillet.records import TopicPartition
from rillet.transport import protocol as P

E = P.ErrorCode
_REFIND = {E.NOT_COORDINATOR, E.COORDINATOR_NOT_AVAILABLE}
_RETRY = {E.COORDINATOR_LOAD_IN_PROGRESS, E.UNRELEASED_INSTANCE_ID, E.REQUEST_TIMED_OUT}
_LOST = {E.UNKNOWN_MEMBER_ID, E.FENCED_MEMBER_EPOCH}
_FATAL = {
    E.FENCED_INSTANCE_ID, E.UNSUPPORTED_ASSIGNOR, E.INVALID_REGULAR_EXPRESSION,
    E.GROUP_MAX_SIZE_REACHED, E.INVALID_REQUEST, E.INVALID_GROUP_ID,
}
# the principal's ACLs refuse the group or a topic (docs/security.md): raised from poll()
# as the typed error (GroupAuthorizationFailedError...), as Kafka's consumer does
_DENIED = {E.GROUP_AUTHORIZATION_FAILED, E.TOPIC_AUTHORIZATION_FAILED}


class ConsumerRebalanceListener:
    """Callbacks run in the thread that calls ``poll()`` (override what you need).

    ``on_partitions_revoked`` runs before a partition is given up (its position is committed
    first when enable.auto.commit is on); ``on_partitions_lost`` when it was taken away
    without a chance to commit (fenced, session lost): defaults to ``on_partitions_revoked``.
    """

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        self.on_partitions_revoked(lost)


def _tps_wire(tps: Iterable[TopicPartition]) -> tuple[P.GroupTopicPartitions, ...]:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(tps):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return tuple(P.GroupTopicPartitions(topic=t, partitions=tuple(ps))
                 for t, ps in by_topic.items())


def _tps_from(items: Iterable[P.GroupTopicPartitions] | None) -> set[TopicPartition]:
    return {TopicPartition(t.topic, p) for t in items or () for p in t.partitions}


class CoordinatorLocator:
    """FindCoordinator with retries; thread-safe; ``invalidate()`` after NOT_COORDINATOR.
    ``key_type``: a group (``COORDINATOR_GROUP``, the default; ``group_id`` is the group) or a
    transactional id (``COORDINATOR_TRANSACTION``; ``group_id`` is the transactional id)."""

    def __init__(self, client: NetworkClient, group_id: str, backoff_s: float,
                 key_type: int = P.COORDINATOR_GROUP) -> None:
        self.client = client
        self.group_id = group_id
        self.backoff_s = backoff_s
        self.key_type = key_type
        self._address: str | None = None
        self._lock = threading.Lock()

    def address(self, timeout_s: float) -> str:
        with self._lock:
            if self._address is not None:
                return self._address
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while True:
            try:
                r = self.client.call_any(P.FindCoordinatorRequest(key=self.group_id,
                                                                  key_type=self.key_type),
                                         max(1, int(min(timeout_s, 5) * 1000)))
                if isinstance(r, P.ErrorResponse) or r.error_code:
                    last = error_for_code(r.error_code, r.error_message)
                    if not last.retriable and r.error_code not in _REFIND:
                        raise last
                else:
                    with self._lock:
                        self._address = f"{r.host}:{r.port}"
                        return self._address
            except RilletError as exc:
                if not exc.retriable:
                    raise
                last = exc
            if time.monotonic() >= deadline:
                what = "group" if self.key_type == P.COORDINATOR_GROUP else "transactional id"
                raise RilletTimeoutError(f"no coordinator for {what} {self.group_id!r}: {last}")
            time.sleep(self.backoff_s)

    def invalidate(self) -> None:
        with self._lock:
            self._address = None

    def call(self, request: Any, timeout_s: float) -> Any:
        """Send to the coordinator, re-finding it on NOT_COORDINATOR / unavailability and
        retrying COORDINATOR_LOAD_IN_PROGRESS until ``timeout_s``. Returns the response
        (whose ``error_code`` may still be set for other errors)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                address = self.address(max(0.1, left))
                r = self.client.call(address, request, max(100, int(min(left, 30) * 1000)))
                code = getattr(r, "error_code", 0)
            except RilletError as exc:
                if not exc.retriable:
                    raise
                self.invalidate()
                code, r = E.COORDINATOR_NOT_AVAILABLE, exc
            if code in _REFIND:
                self.invalidate()
            if code not in _REFIND and code not in (E.COORDINATOR_LOAD_IN_PROGRESS,):
                return r
            if time.monotonic() >= deadline:
                if isinstance(r, Exception):
                    raise RilletTimeoutError(f"group coordinator unavailable: {r}")
                return r
            time.sleep(self.backoff_s)


class Membership:
    """One consumer's membership in ``group.id``. Created by ``Consumer.subscribe``."""

    def __init__(self, client: NetworkClient, config: Any, *, topics: tuple[str, ...] | None,
                 regex: str | None, listener: ConsumerRebalanceListener | None) -> None:
        if not config.group_id:
            raise IllegalStateError("subscribe() needs group.id in the consumer config")
        self.client = client
        self.config = config
        self.group_id: str = config.group_id
        self.instance_id: str | None = config.group_instance_id
        self.member_id = str(uuid.uuid4())
        self.member_epoch = 0
        self.topics = topics
        self.regex = regex
        self.listener = listener or ConsumerRebalanceListener()
        self.locator = CoordinatorLocator(client, self.group_id, config.retry_backoff_ms / 1000)
        self.session_timeout_s = config.session_timeout_ms / 1000
        self.max_poll_interval_s = config.max_poll_interval_ms / 1000
        self.heartbeat_interval_s = config.heartbeat_interval_ms / 1000
        self.client_host = socket.gethostname()
        # shared with the heartbeat thread (under _lock)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.owned: set[TopicPartition] = set()
        self.target: set[TopicPartition] | None = None  # what the coordinator wants us to own
        self.lost = False  # drop everything without committing, then rejoin
        self.fatal: RilletError | None = None
        self.last_poll = time.monotonic()
        self._last_ok_send = time.monotonic()
        # revocation lease: send time of the first request after the last calm reply
        self._calm = True
        self._uncalm_since: float | None = None
        self._sent_owned: frozenset[TopicPartition] = frozenset()
        self._send_now = True
        self._stopping = False
        self._leave_epoch: int | None = None
        self._left = threading.Event()
        self._changed = threading.Event()
        self._log = logging.LoggerAdapter(logging.getLogger("rillet._membership"),
                                          {"group": self.group_id, "member": self.member_id})
        self._thread = threading.Thread(target=self._run, name=f"rillet-heartbeat-{self.group_id}",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ heartbeat thread

    def _request(self) -> P.ConsumerGroupHeartbeatRequest:
        with self._lock:
            owned, epoch = set(self.owned), self.member_epoch
        # held at most one interval, and well inside our own request timeout
        max_wait_ms = min(int(self.heartbeat_interval_s * 1000),
                          self.config.request_timeout_ms // 2) if epoch > 0 else 0
        return P.ConsumerGroupHeartbeatRequest(
            group_id=self.group_id,
            member_id=self.member_id,
            member_epoch=epoch,
            instance_id=self.instance_id,
            rebalance_timeout_ms=self.config.max_poll_interval_ms,
            server_assignor=getattr(self.config, "group_remote_assignor", None),
            subscribed_topic_names=self.topics if self.regex is None else None,
            subscribed_topic_regex=self.regex,
            owned_partitions=_tps_wire(owned),
            client_id=self.config.client_id,
            client_host=self.client_host,
            max_wait_ms=max(0, max_wait_ms),
        )

    def _call(self, request: P.ConsumerGroupHeartbeatRequest) -> Any:
        """Send one heartbeat and wait for its answer; None if close() or the application
        (``_send_now``) interrupted the wait (the coordinator's held answer is dropped)."""
        timeout_s = request.max_wait_ms / 1000 + max(1.0, self.heartbeat_interval_s)
        address = self.locator.address(timeout_s)
        future = self.client.request(address, request, int(timeout_s * 1000))
        future.add_done_callback(self._notify)
        deadline = time.monotonic() + timeout_s + 5
        with self._lock:
            while not future.done() and not self._stopping and not self._send_now:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
        if not future.done():
            if self._stopping or self._send_now:
                return None
            self.locator.invalidate()
            raise map_error(TimeoutError("no heartbeat answer in time"))
        try:
            r = future.result(0)
        except BaseException as exc:  # noqa: BLE001 - mapped to the typed error
            self.locator.invalidate()
            raise map_error(exc) from None
        if getattr(r, "error_code", 0) in _REFIND:
            self.locator.invalidate()
        return r

    def _notify(self, _future: Any) -> None:
        with self._lock:
            self._wake.notify_all()

    def _run(self) -> None:
        backoff = self.config.retry_backoff_ms / 1000
        next_at = 0.0
        while True:
            with self._lock:
                while not self._stopping and not self._send_now and (
                        time.monotonic() < next_at or self.lost):
                    wait = next_at - time.monotonic() if not self.lost else 0.1
                    self._wake.wait(max(0.01, min(wait, 0.1)))
                    self._check_leases_locked()
                if self._stopping:
                    break
                self._send_now = False
            sent = time.monotonic()
            request = self._request()
            with self._lock:
                self._sent_owned = frozenset(_tps_from(request.owned_partitions))
                if self._calm:
                    self._calm, self._uncalm_since = False, sent
            try:
                r = self._call(request)
                if r is None:
                    continue  # interrupted: stop, or send the application's news at once
                code = r.error_code
            except RilletError as exc:
                if exc.code in _DENIED:  # FindCoordinator refused: no ACL for the group
                    self._fail(exc)
                    continue
                self._log.debug("heartbeat failed: %s", exc)
                next_at = time.monotonic() + backoff
                continue
            except Exception:  # noqa: BLE001 - e.g. the client closed under us
                if self.client.closed:
                    return
                self._log.exception("heartbeat failed")
                next_at = time.monotonic() + 1.0
                continue
            next_at = self._handle(r, code, request, sent, backoff)
        self._leave()

    def _handle(self, r: P.ConsumerGroupHeartbeatResponse, code: int,
                request: P.ConsumerGroupHeartbeatRequest, sent: float, backoff: float) -> float:
        now = time.monotonic()
        if code == E.NONE:
            pending = False
            with self._lock:
                self._last_ok_send = sent
                self.member_epoch = r.member_epoch
                if r.assignment is not None:
                    target = _tps_from(r.assignment)
                    # calm: nothing to revoke, and we did not revoke while it was in flight
                    if self._sent_owned <= target and self._sent_owned == self.owned:
                        self._calm, self._uncalm_since = True, None
                    if target != self.target:
                        self._log.debug("epoch %s: target %s", r.member_epoch, sorted(target))
                    self.target = target
                    if target != self.owned:
                        self._changed.set()
                    pending = target != self.owned
            interval = r.heartbeat_interval_ms / 1000 if r.heartbeat_interval_ms > 0 else (
                self.heartbeat_interval_s)
            self.heartbeat_interval_s = interval
            if pending:
                return now + interval  # the application reconciles, then wakes us
            if r.member_epoch != request.member_epoch:
                return now  # a new epoch and nothing to reconcile: poll for what comes next
            if request.max_wait_ms > 0:
                return max(now, sent + interval)  # after a held answer: at once
            return now + interval
        if code in _LOST:
            self._log.info("member fenced (%s): partitions lost, rejoining", E(code).name)
            self._lose()
            return now
        if code in _FATAL:
            self._fail(GroupMembershipError(f"{E(code).name}: {r.error_message}", code=code))
            return now
        if code in _DENIED:
            self._fail(error_for_code(code, r.error_message))
            return now
        return now + (1.0 if code == E.UNRELEASED_INSTANCE_ID else backoff)

    def _fail(self, error: RilletError) -> None:
        """Stop heartbeating; the next poll() raises ``error``."""
        with self._lock:
            self.fatal = error
            self._stopping = True
        self._changed.set()

    def _lose(self) -> None:
        with self._lock:
            self.lost = True
            self.member_epoch = 0
            self.target = None
        self._changed.set()

    def _check_leases_locked(self) -> None:
        now = time.monotonic()
        if self.owned and not self.lost and now > self._last_ok_send + self.session_timeout_s:
            self._log.warning("no successful heartbeat for %s s: partitions lost",
                              self.session_timeout_s)
            self.lost, self.member_epoch, self.target = True, 0, None
            self._changed.set()
        if (self.owned and not self.lost and self._uncalm_since is not None
                and now > self._uncalm_since + self.max_poll_interval_s):
            self._log.warning("a revocation may be pending for max.poll.interval.ms: "
                              "partitions lost")
            self.lost, self.member_epoch, self.target = True, 0, None
            self._changed.set()
        if (now - self.last_poll > self.max_poll_interval_s and self.member_epoch > 0
                and not self.lost):
            self._log.warning("poll() not called for max.poll.interval.ms: leaving the group")
            self.lost, self.target = True, None
            self._leave_epoch = -1
            self._send_leave_async()
            self._changed.set()

    def _send_leave_async(self) -> None:
        req = P.ConsumerGroupHeartbeatRequest(group_id=self.group_id, member_id=self.member_id,
                                              member_epoch=-1, instance_id=self.instance_id)
        self.member_epoch = 0
        address = self.locator._address
        if address is not None:
            self.client.request(address, req)

    def _leave(self) -> None:
        epoch = self._leave_epoch
        if epoch is None or self.client.closed:
            self._left.set()
            return
        req = P.ConsumerGroupHeartbeatRequest(group_id=self.group_id, member_id=self.member_id,
                                              member_epoch=epoch, instance_id=self.instance_id)
        try:
            self.locator.call(req, min(5.0, self.config.request_timeout_ms / 1000))
        except Exception as exc:  # noqa: BLE001 - leaving is best effort; the session expires
            self._log.info("leave request failed: %s", exc)
        self._left.set()

    # ------------------------------------------------------------- application thread

    def on_poll(self) -> None:
        with self._lock:
            self.last_poll = time.monotonic()
            if self.fatal is not None:
                raise self.fatal

    def reconcile(self, consumer: Any) -> None:
        """Apply the coordinator's target (app thread). ``consumer`` gives the fetch engine,
        commits and positions."""
        with self._lock:
            self.last_poll = time.monotonic()
            lost, target, owned = self.lost, self.target, set(self.owned)
            self._changed.clear()
        if lost:
            if owned:
                consumer._drop_partitions(owned)
                self._callback(self.listener.on_partitions_lost, owned)
            with self._lock:
                self.owned = set()
                self.lost = False
                self._leave_epoch = None
                self._send_now = True
                self._wake.notify_all()
            return
        if target is None or target == owned:
            return
        revoked = owned - target
        assigned = target - owned
        if revoked:
            if self.config.enable_auto_commit:
                try:
                    consumer._commit_positions(revoked)
                except RilletError as exc:
                    self._log.warning("commit before revoking %s failed: %s", sorted(revoked),
                                      exc)
            self._callback(self.listener.on_partitions_revoked, revoked)
            consumer._drop_partitions(revoked)
        if assigned:
            consumer._add_partitions(assigned)
            self._callback(self.listener.on_partitions_assigned, assigned)
        with self._lock:
            if self.lost:  # fenced meanwhile: the next reconcile drops everything
                self.owned = (owned - revoked) | assigned
                return
            self.owned = (owned - revoked) | assigned
            self._send_now = True
            self._wake.notify_all()

    def _callback(self, fn: Callable[[set[TopicPartition]], None],
                  tps: set[TopicPartition]) -> None:
        try:
            fn(set(tps))
        except Exception:  # noqa: BLE001 - a listener bug must not break the membership
            self._log.exception("rebalance listener %s failed", fn.__name__)

    def wait_for_change(self, timeout_s: float) -> None:
        self._changed.wait(timeout_s)

    def commit_identity(self) -> tuple[str, int]:
        with self._lock:
            return self.member_id, self.member_epoch

    def close(self, timeout_s: float = 5.0) -> None:
        """Leave the group (epoch -1, or -2 for a static member) and stop the thread."""
        with self._lock:
            if self._stopping:
                return
            self._leave_epoch = -2 if self.instance_id else -1
            if self.member_epoch == 0 and self.lost:
                self._leave_epoch = None
            self._stopping = True
            self._wake.notify_all()
        self._left.wait(timeout_s)
        self._thread.join(timeout_s)


class OffsetsClient:
    """OffsetCommit / OffsetFetch against the group's coordinator (any thread)."""

    def __init__(self, locator: CoordinatorLocator, config: Any) -> None:
        self.locator = locator
        self.group_id = locator.group_id
        self.backoff_s = config.retry_backoff_ms / 1000
        self.backoff_max_s = getattr(config, "retry_backoff_max_ms", 1000) / 1000
        self.timeout_s = config.request_timeout_ms / 1000
        # read_committed (KIP-447): a partition whose offset is pending in an open transaction
        # answers UNSTABLE_OFFSET_COMMIT; wait for the transaction to end rather than start
        # from an offset that may still be replaced
        self.require_stable = getattr(config, "isolation_level", "") == "read_committed"

    def commit(self, offsets: dict[TopicPartition, int],
               identity: Callable[[], tuple[str, int]] | None = None,
               instance_id: str | None = None, timeout_s: float | None = None) -> None:
        """Commit ``offsets`` (next offset to consume per partition). ``identity`` gives the
        member id and epoch (None: a simple commit, only allowed while the group is empty)."""
        if not offsets:
            return
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        by_topic: dict[str, list[P.OffsetCommitPartition]] = {}
        for tp, off in sorted(offsets.items()):
            by_topic.setdefault(tp[0], []).append(
                P.OffsetCommitPartition(partition=tp[1], committed_offset=int(off)))
        topics = tuple(P.OffsetCommitTopic(name=t, partitions=tuple(ps))
                       for t, ps in by_topic.items())
        while True:
            member_id, epoch = identity() if identity else ("", -1)
            req = P.OffsetCommitRequest(group_id=self.group_id, member_id=member_id,
                                        member_epoch=epoch, group_instance_id=instance_id,
                                        topics=topics)
            r = self.locator.call(req, max(0.1, deadline - time.monotonic()))
            codes = [r.error_code] + [p.error_code for t in r.topics for p in t.partitions]
            code = next((c for c in codes if c), 0)
            message = r.error_message
            if code == E.NONE:
                return
            if code in (E.STALE_MEMBER_EPOCH, *_RETRY, *_REFIND) and (
                    time.monotonic() < deadline):
                time.sleep(self.backoff_s)  # the heartbeat brings the new epoch
                continue
            if code in (E.UNKNOWN_MEMBER_ID, E.FENCED_MEMBER_EPOCH, E.FENCED_INSTANCE_ID,
                        E.STALE_MEMBER_EPOCH):
                raise CommitFailedError(f"{E(code).name}: {message or ''}".rstrip(": "),
                                        code=code)
            raise error_for_code(code, message)

    def committed(self, tps: Iterable[TopicPartition] | None,
                  timeout_s: float | None = None) -> dict[TopicPartition, int | None]:
        """Committed offsets (None where nothing is committed); ``tps`` None: all of them."""
        tps = None if tps is None else sorted({TopicPartition(*tp) for tp in tps})
        req = P.OffsetFetchRequest(group_id=self.group_id,
                                   topics=None if tps is None else _tps_wire(tps),
                                   require_stable=self.require_stable)
        timeout_s = timeout_s or self.timeout_s
        deadline = time.monotonic() + timeout_s
        backoff = self.backoff_s
        while True:
            r = self.locator.call(req, max(0.1, deadline - time.monotonic()))
            codes = [r.error_code] + [p.error_code for t in r.topics for p in t.partitions]
            if E.UNSTABLE_OFFSET_COMMIT not in codes:
                break
            if time.monotonic() >= deadline:
                raise RilletTimeoutError(
                    f"committed offsets of group {self.group_id!r} still pending in an open "
                    f"transaction after {timeout_s} s (UNSTABLE_OFFSET_COMMIT)")
            time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, self.backoff_max_s)
        if r.error_code:
            raise error_for_code(r.error_code, r.error_message)
        out: dict[TopicPartition, int | None] = dict.fromkeys(tps or (), None)
        for t in r.topics:
            for p in t.partitions:
                if p.error_code:
                    raise error_for_code(p.error_code, f"{t.name}-{p.partition}")
                out[TopicPartition(t.name, p.partition)] = (
                    p.committed_offset if p.committed_offset >= 0 else None)
        return out
