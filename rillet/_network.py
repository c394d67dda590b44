"""Bootstrap, metadata cache and request routing shared by Producer, Consumer and Admin.

A :class:`NetworkClient` owns one ``ClientEndpoint`` (whose background I/O thread owns the
ZeroMQ sockets) and the client's view of the cluster: brokers by id, partition leaders and
partition counts. The view is replaced as a whole on each metadata response, so readers on
other threads see either the old or the new one, never a mix.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from rillet._reachability import unreachable_reason
from rillet.config import ClientConfig
from rillet.errors import (
    AuthenticationFailedError,
    BrokerUnavailableError,
    IllegalStateError,
    LeaderNotAvailableError,
    NoBrokersAvailableError,
    RequestTimedOutError,
    RilletError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from rillet.security import client_curve
from rillet.transport import errors as terr
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.protocol import (
    ApiVersionsRequest,
    ErrorCode,
    MetadataRequest,
    MetadataResponse,
)


def map_error(exc: BaseException) -> BaseException:
    """A transport exception as the client's typed error (others unchanged)."""
    if isinstance(exc, RilletError):
        return exc
    if isinstance(exc, terr.AuthenticationFailedError):
        return AuthenticationFailedError(str(exc))
    if isinstance(exc, terr.BrokerUnavailableError):
        return BrokerUnavailableError(str(exc))
    if isinstance(exc, terr.RequestTimedOutError):
        return RequestTimedOutError(str(exc))
    if isinstance(exc, terr.RequestTooLargeError):
        return error_for_code(ErrorCode.MESSAGE_TOO_LARGE, str(exc))
    if isinstance(exc, terr.ProtocolError):
        return error_for_code(exc.code, exc.message)
    if isinstance(exc, terr.EndpointClosedError):
        return IllegalStateError(f"the client is closed ({exc})")
    if isinstance(exc, TimeoutError):  # a future's result(timeout) ran out (retriable)
        return RequestTimedOutError(str(exc) or "no answer in time")
    return exc


class ClusterView:
    """An immutable snapshot of metadata: brokers, leaders, partition counts, topic errors."""

    __slots__ = ("brokers", "leaders", "partition_counts", "topics", "topic_errors",
                 "controller_id", "cluster_id")

    def __init__(self, response: MetadataResponse | None = None,
                 previous: ClusterView | None = None, all_topics: bool = False) -> None:
        self.brokers: dict[int, str] = dict(previous.brokers) if previous else {}
        self.leaders: dict[tuple[str, int], int] = dict(previous.leaders) if previous else {}
        self.partition_counts: dict[str, int] = dict(previous.partition_counts) if previous else {}
        self.topics: dict[str, Any] = dict(previous.topics) if previous else {}
        self.topic_errors: dict[str, int] = {}
        self.controller_id = previous.controller_id if previous else -1
        self.cluster_id = previous.cluster_id if previous else ""
        if response is None:
            return
        if all_topics:  # a full listing: topics it does not name are gone
            self.topics, self.partition_counts, self.leaders = {}, {}, {}
        if response.brokers:
            self.brokers = {b.broker_id: f"{b.host}:{b.port}" for b in response.brokers}
        self.controller_id = response.controller_id
        self.cluster_id = response.cluster_id
        for t in response.topics:
            if t.error_code:
                self.topic_errors[t.name] = t.error_code
                if t.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    self.partition_counts.pop(t.name, None)
                    self.topics.pop(t.name, None)
                    for key in [k for k in self.leaders if k[0] == t.name]:
                        del self.leaders[key]
                continue
            self.topics[t.name] = t
            self.partition_counts[t.name] = len(t.partitions)
            for p in t.partitions:
                self.leaders[(t.name, p.partition)] = p.leader


class NetworkClient:
    """Thread-safe. ``request`` is asynchronous (a Future of the response); ``call`` blocks and
    raises the typed error; metadata calls refresh the cached :class:`ClusterView`."""

    def __init__(self, config: ClientConfig, *, name: str = "rillet-client") -> None:
        self.config = config
        self.request_timeout_ms = config.request_timeout_ms
        self.bootstrap = list(config.bootstrap_servers)
        self.endpoint = ClientEndpoint(
            reconnect_ivl_ms=config.reconnect_backoff_ms,
            reconnect_ivl_max_ms=config.reconnect_backoff_max_ms,
            name=f"{name}-io",
            **client_curve(config),
        )
        self.view = ClusterView()
        # partition count per topic, updated in place so hot paths can hold the dict itself
        self.partition_counts: dict[str, int] = {}
        self._metadata_lock = threading.Lock()
        self._metadata_inflight: Future | None = None
        self._metadata_sent = 0.0  # time.monotonic() when it was sent
        self._last_refresh = 0.0
        self._rng = random.Random()
        self.closed = False

    # -- requests -------------------------------------------------------------------------

    def request(self, address: str, msg: Any, timeout_ms: int | None = None) -> Future:
        return self.endpoint.request(address, msg, timeout_ms or self.request_timeout_ms)

    def call(self, address: str, msg: Any, timeout_ms: int | None = None) -> Any:
        timeout_ms = timeout_ms or self.request_timeout_ms
        fut = self.request(address, msg, timeout_ms)
        try:
            return fut.result(timeout_ms / 1000 + 5)
        except BaseException as exc:  # noqa: BLE001 - mapped to the typed error
            raise map_error(exc) from None

    def addresses(self) -> list[str]:
        """Known brokers first (shuffled), then the bootstrap list; by connection state:
        connected, never tried, then known to be down, so a dead broker does not cost a
        timeout every time (a request to one never reached waits out its whole timeout)."""
        known = list(self.view.brokers.values())
        self._rng.shuffle(known)
        boot = [a for a in self.bootstrap if a not in known]
        ordered = known + boot
        rank = {True: 0, None: 1, False: 2}
        return sorted(ordered, key=lambda a: rank[self.endpoint.is_connected(a)])

    def controller_address(self) -> str | None:
        """The active controller's address per the cached metadata, or None."""
        view = self.view
        return view.brokers.get(view.controller_id) if view.controller_id >= 0 else None

    def call_controller(self, msg: Any, timeout_ms: int | None = None) -> Any:
        """Send a controller request (CreateTopics, ...) to the active controller if known
        and reachable, else to any broker (which forwards it to the controller)."""
        timeout_ms = timeout_ms or self.request_timeout_ms
        address = self.controller_address()
        state = self.endpoint.is_connected(address) if address is not None else False
        if state:
            try:
                return self.call(address, msg, timeout_ms)
            except (BrokerUnavailableError, RequestTimedOutError):
                self.request_metadata_update(())
        elif state is None:  # never talked to it: connect for next time, forward this one
            self.endpoint.request(address, ApiVersionsRequest(), 1000)
        return self.call_any(msg, timeout_ms)

    def call_any(self, msg: Any, timeout_ms: int | None = None) -> Any:
        """Send to any reachable broker, trying the others on connection errors."""
        timeout_ms = timeout_ms or self.request_timeout_ms
        self.fail_fast_if_unreachable()
        deadline = time.monotonic() + timeout_ms / 1000
        last: BaseException | None = None
        addresses = self.addresses()
        per_try = max(500, timeout_ms // max(1, len(addresses)))
        while True:
            for address in addresses:
                remaining = int((deadline - time.monotonic()) * 1000)
                if remaining <= 0:
                    break
                try:
                    return self.call(address, msg, min(per_try, remaining))
                except (BrokerUnavailableError, RequestTimedOutError) as exc:
                    last = exc
            if time.monotonic() >= deadline:
                break
        servers = ",".join(self.bootstrap)
        raise NoBrokersAvailableError(
            f"no broker answered within {timeout_ms} ms (bootstrap.servers={servers}): {last}"
        )

    def fail_fast_if_unreachable(self) -> None:
        """Before any metadata: NoBrokersAvailableError at once if every bootstrap server
        refuses the connection or does not resolve (rillet/_reachability.py)."""
        if self.view.brokers or any(self.endpoint.is_connected(a) for a in self.bootstrap):
            return
        reason = unreachable_reason(self.bootstrap)
        if reason is not None:
            raise NoBrokersAvailableError(
                f"no broker reachable (bootstrap.servers={','.join(self.bootstrap)}): {reason}")

    # -- metadata ---------------------------------------------------------------------------

    def refresh_metadata(self, topics: Iterable[str] | None = None,
                         timeout_ms: int | None = None, *,
                         via_controller: bool = False) -> ClusterView:
        """Blocking refresh; ``topics=None`` asks for every topic. ``via_controller``: ask the
        active controller, whose image is the freshest (admin reads after admin writes)."""
        req = MetadataRequest(topics=tuple(topics) if topics is not None else None)
        call = self.call_controller if via_controller else self.call_any
        response = call(req, timeout_ms)
        return self._apply(response, all_topics=topics is None)

    def _apply(self, response: MetadataResponse, all_topics: bool = False) -> ClusterView:
        with self._metadata_lock:
            view = self.view = ClusterView(response, self.view, all_topics)
            counts = self.partition_counts
            for name, n in view.partition_counts.items():
                if counts.get(name) != n:
                    counts[name] = n
            for name in [k for k in counts if k not in view.partition_counts]:
                del counts[name]
            self._last_refresh = time.monotonic()
            return view

    def request_metadata_update(self, topics: Iterable[str] | None = None) -> None:
        """Non-blocking refresh (at most one in flight): used by I/O paths on NOT_LEADER etc.

        One unanswered for request.timeout.ms no longer counts: a lost reply must not stop
        every later refresh (the client would keep its stale leaders for good)."""
        with self._metadata_lock:
            inflight = self._metadata_inflight
            if inflight is not None and not inflight.done() and (
                    time.monotonic() - self._metadata_sent < self.request_timeout_ms / 1000):
                return
            addresses = self.addresses()
            address = addresses[0] if addresses else self.bootstrap[0]
            if self.endpoint.is_connected(address) is False:  # every broker we know is down
                address = self.bootstrap[int(self._rng.random() * len(self.bootstrap))]
            req = MetadataRequest(topics=tuple(topics) if topics is not None else None)
            fut = self.request(address, req)
            self._metadata_inflight = fut
            self._metadata_sent = time.monotonic()

        def done(f: Future) -> None:
            if f.exception() is None:
                self._apply(f.result(), all_topics=req.topics is None)

        fut.add_done_callback(done)

    def wait_for_topic(self, topic: str, max_block_ms: int) -> int:
        """Partition count of ``topic``, fetching metadata (and waiting for leaders) if needed.

        A topic the cluster does not know raises UnknownTopicOrPartitionError after a short
        grace period (a topic created a moment ago may still be propagating).
        """
        n = self.view.partition_counts.get(topic)
        if n is not None:
            return n
        deadline = time.monotonic() + max_block_ms / 1000
        unknown_deadline = time.monotonic() + min(max_block_ms, 1500) / 1000
        backoff = 0.02
        while True:
            view = self.refresh_metadata([topic], timeout_ms=max(1, int(max_block_ms)))
            n = view.partition_counts.get(topic)
            code = view.topic_errors.get(topic)
            if n is not None and n > 0:
                return n
            now = time.monotonic()
            if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and now >= unknown_deadline:
                raise UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
            if code == ErrorCode.TOPIC_AUTHORIZATION_FAILED:
                raise error_for_code(code, f"this client's principal may not describe topic "
                                           f"{topic!r} (its ACLs: docs/security.md)")
            if code and code not in (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                     ErrorCode.LEADER_NOT_AVAILABLE):
                raise error_for_code(code, f"topic {topic!r}")
            if now >= deadline:
                raise LeaderNotAvailableError(
                    f"topic {topic!r} has no partitions with a leader after {max_block_ms} ms")
            time.sleep(backoff)
            backoff = min(backoff * 2, 0.2)

    def leader_address(self, topic: str, partition: int) -> str | None:
        view = self.view
        leader = view.leaders.get((topic, partition), -1)
        if leader < 0:
            return None
        return view.brokers.get(leader)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.endpoint.close()
