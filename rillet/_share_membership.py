"""Share-group membership (KIP-932): the ShareGroupHeartbeat thread of a ShareConsumer.

Simpler than a consumer group's (:mod:`rillet._membership`): share-group members never own
partitions exclusively, so there is no revocation to acknowledge and nothing to commit
before a partition moves. The *heartbeat thread* sends ShareGroupHeartbeat every
``heartbeat_interval_ms`` (the coordinator's value once it answered) and publishes the
assignment it got; the *application thread* (``ShareConsumer.poll``) reads it and fetches
from those partitions. A fenced or unknown member rejoins with epoch 0 (same member id);
``close()`` leaves with epoch -1. Shared fields are guarded by ``_lock``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid

from rillet._membership import _DENIED, CoordinatorLocator, _tps_from
from rillet._network import NetworkClient
from rillet.errors import GroupMembershipError, RilletError, error_for_code
from rillet.records import TopicPartition
from rillet.transport import protocol as P

E = P.ErrorCode
_REJOIN = {E.UNKNOWN_MEMBER_ID, E.FENCED_MEMBER_EPOCH}
_FATAL = {E.INCONSISTENT_GROUP_PROTOCOL, E.GROUP_MAX_SIZE_REACHED, E.INVALID_REQUEST}


class ShareMembership:
    """One ShareConsumer's membership in its share group. Thread-safe accessors."""

    def __init__(self, client: NetworkClient, config, topics: tuple[str, ...]) -> None:
        self.client = client
        self.config = config
        self.group_id: str = config.group_id
        self.member_id = str(uuid.uuid4())
        self.topics = topics
        self.locator = CoordinatorLocator(client, self.group_id, config.retry_backoff_ms / 1000)
        self.heartbeat_interval_s = config.heartbeat_interval_ms / 1000
        self._host = socket.gethostname()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self.member_epoch = 0
        self.assignment: frozenset[TopicPartition] = frozenset()
        self.fatal: RilletError | None = None
        self.joined = threading.Event()  # set once the coordinator answered a join
        self._send_topics = True
        self._stopping = False
        self._log = logging.LoggerAdapter(logging.getLogger("rillet._share_membership"),
                                          {"group": self.group_id, "member": self.member_id})
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"rillet-share-heartbeat-{self.group_id}")
        self._thread.start()

    # ------------------------------------------------------------------ heartbeat thread

    def _request(self) -> P.ShareGroupHeartbeatRequest:
        with self._lock:
            epoch, send_topics = self.member_epoch, self._send_topics or self.member_epoch == 0
        return P.ShareGroupHeartbeatRequest(
            group_id=self.group_id, member_id=self.member_id, member_epoch=epoch,
            subscribed_topic_names=self.topics if send_topics else None,
            client_id=self.config.client_id, client_host=self._host)

    def _run(self) -> None:
        backoff = self.config.retry_backoff_ms / 1000
        next_at = 0.0
        while True:
            with self._lock:
                while not self._stopping and time.monotonic() < next_at:
                    self._wake.wait(max(0.01, next_at - time.monotonic()))
                if self._stopping:
                    break
            request = self._request()
            try:
                r = self.locator.call(request, max(1.0, self.heartbeat_interval_s))
            except RilletError as exc:
                if exc.code in _DENIED:  # FindCoordinator refused by the ACLs
                    self._fail(exc)
                    continue
                self._log.debug("share heartbeat failed: %s", exc)
                next_at = time.monotonic() + backoff
                continue
            except Exception:  # noqa: BLE001 - e.g. the client closed under us
                if self.client.closed:
                    return
                self._log.exception("share heartbeat failed")
                next_at = time.monotonic() + 1.0
                continue
            next_at = self._handle(r, request, backoff)
        self._leave()

    def _handle(self, r, request: P.ShareGroupHeartbeatRequest, backoff: float) -> float:
        now = time.monotonic()
        code = getattr(r, "error_code", 0)
        if isinstance(r, P.ErrorResponse):
            code = r.error_code
        if code == E.NONE:
            with self._lock:
                self.member_epoch = r.member_epoch
                self._send_topics = False
                if r.assignment is not None:
                    target = frozenset(_tps_from(r.assignment))
                    if target != self.assignment:
                        self._log.debug("epoch %s: assignment %s", r.member_epoch,
                                        sorted(target))
                    self.assignment = target
            self.joined.set()
            if r.heartbeat_interval_ms > 0:
                self.heartbeat_interval_s = r.heartbeat_interval_ms / 1000
            return now + self.heartbeat_interval_s
        if code in _REJOIN:
            self._log.info("share member fenced (%s): rejoining", E(code).name)
            with self._lock:
                self.member_epoch = 0
                self._send_topics = True
            return now
        if code in _FATAL:
            self._fail(GroupMembershipError(
                f"{E(code).name}: {r.error_message or ''}".rstrip(": "), code=code))
            return now
        if code in _DENIED:  # the ACLs refuse the group or a topic (docs/security.md)
            self._fail(error_for_code(code, getattr(r, "error_message", None)))
            return now
        return now + backoff

    def _fail(self, error: RilletError) -> None:
        with self._lock:
            self.fatal = error
            self._stopping = True
        self.joined.set()

    def _leave(self) -> None:
        with self._lock:
            epoch = self.member_epoch
        if epoch <= 0 or self.client.closed:
            return
        req = P.ShareGroupHeartbeatRequest(group_id=self.group_id, member_id=self.member_id,
                                           member_epoch=-1)
        try:
            self.locator.call(req, min(5.0, self.config.request_timeout_ms / 1000))
        except Exception as exc:  # noqa: BLE001 - best effort: the session expires anyway
            self._log.info("share leave failed: %s", exc)

    # ------------------------------------------------------------- application thread

    def current(self) -> frozenset[TopicPartition]:
        """The assignment now (raises the membership's fatal error, if any)."""
        with self._lock:
            if self.fatal is not None:
                raise self.fatal
            return self.assignment

    def close(self, timeout_s: float = 5.0) -> None:
        """Leave the group (epoch -1) and stop the thread."""
        with self._lock:
            self._stopping = True
            self._wake.notify_all()
        self._thread.join(timeout_s)
