"""ReplicaFetcher: one thread per source broker, pulling every partition this broker follows
from that leader (Kafka's ReplicaFetcherThread).

Per partition the state is the leader epoch it follows and whether it must truncate first.
A round: partitions that need it ask the leader where their latest epoch ends
(OffsetForLeaderEpoch) and truncate (``FollowerTruncate``, KIP-101/279, repeated while the
walk-back is not done); then one Fetch with ``replica_id`` = this broker for all the others,
each at its log end offset, long-polling ``replica.fetch.wait.max.ms``; fetched batches go to
the partition actor (``FollowerAppend``), whose answer (the new log end offset, and the last
epoch, sent as ``last_fetched_epoch`` for the leader's KIP-320 divergence check) is the next
fetch offset, so a busy follower asks its partition actor once per round; all partitions of a
response are handed over at once and their answers collected after (one pass). Stale answers
(FENCED_LEADER_EPOCH, NOT_LEADER_OR_FOLLOWER, ...) pause the partition until the metadata moves it (the node calls
``set_partitions`` on every image change). The partition actors are asked (blocking) from
this thread, never the other way round.

I/O rounds: the Fetch is sent without waiting for it; when its answer arrives on the fetch
endpoint's I/O thread and this thread is idle, the I/O thread applies it and sends the next
Fetch itself (``_on_answer``), as the producer's I/O thread runs the sender's round: a
follower's round trip then costs no wake-up of this thread and no hand-back to the I/O thread
(the hops of an acks=all produce, docs/runtime.md). Rounds are serialized by ``_turn``; the
I/O thread only tries it, and leaves to this thread every answer that needs a blocking step:
errors, divergences, more than ``IO_ROUND_MAX_BYTES`` of records (a catch-up), a partition
actor busy with another turn (its append is answered later), a truncation or an ask for a
log end. The fetch endpoint is the fetchers' own (actors/node.py), so an I/O round delays
only other leaders' fetch answers, never Raft or heartbeats.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import pykka
from loguru import logger
from rillet.transport import protocol as P

from . import partition as R
from .runtime import ask_inline
from .ticker import now_ms

E = P.ErrorCode
Key = tuple[str, int]
ASK_TIMEOUT_S = 30.0
# a response with more record bytes than this is applied on the fetcher's own thread, not on
# the fetch endpoint's I/O thread (which the other leaders' fetchers share)
IO_ROUND_MAX_BYTES = 1 << 20
_SESSION_ERRORS = frozenset({E.FETCH_SESSION_ID_NOT_FOUND, E.INVALID_FETCH_SESSION_EPOCH})
_STALE = frozenset(
    {
        E.NOT_LEADER_OR_FOLLOWER,
        E.FENCED_LEADER_EPOCH,
        E.UNKNOWN_LEADER_EPOCH,
        E.UNKNOWN_TOPIC_OR_PARTITION,
        E.LEADER_NOT_AVAILABLE,
    }
)


class _HandOver(Exception):
    """An I/O round met a step that may block (an ask, a truncation): the fetcher thread
    takes the round over from where nothing has changed yet."""


@dataclass(slots=True)
class _State:
    leader_epoch: int
    truncating: bool = True
    paused_until_ms: int = 0
    fetch_offset: int = -1  # the log end offset the last append returned (-1: ask)
    last_epoch: int = -1  # the epoch of our last batch (KIP-320: the leader checks it)
    high_watermark: int = -1  # the leader's, as last handed to the partition actor
    log_start_offset: int = -1  # the leader's, likewise (DeleteRecords moves it)
    # what the leader's fetch session knows of it: (session token, fetch offset, leader
    # epoch); None after an error, a pause or a truncation, so the next request names it
    sent: tuple[int, int, int] | None = None


@dataclass(slots=True)
class _Flight:
    """The session's one Fetch in flight, and what its answer is applied with."""

    future: Future
    request: P.FetchRequest
    offsets: dict[Key, int]
    states: dict[Key, _State]
    opening: bool
    deadline: float  # monotonic s: the endpoint fails the request before this


def _answered(future) -> bool:
    """An actor's answer (a pykka future) is there: ``get`` would not wait."""
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:  # noqa: BLE001 - answered with an error: _appended handles it
        return True
    return True


class ReplicaFetcher:
    """Fetches from broker ``source_id`` for this broker. ``start()``, ``stop()``."""

    def __init__(
        self,
        broker_id: int,
        source_id: int,
        *,
        address_of: Callable[[int], str | None],
        endpoint,
        replica: Callable[[Key], pykka.ActorRef | None],
        fetch_wait_ms: int = 500,
        fetch_max_bytes: int = 1 << 20,
        backoff_ms: int = 100,
        incarnation: str = "",
        clock: Callable[[], int] = now_ms,  # wall-clock ms; tests may pass a fake one
    ) -> None:
        self.clock = clock
        self.broker_id = broker_id
        self.incarnation = incarnation  # this broker process: the leader checks it (KIP-903)
        self.source_id = source_id
        self._address_of = address_of
        self._endpoint = endpoint
        self._replica = replica
        self._wait_ms = fetch_wait_ms
        self._max_bytes = fetch_max_bytes
        self._backoff_ms = backoff_ms
        self._partitions: dict[Key, _State] = {}
        # the incremental fetch session with the leader (KIP-227; actors/fetch_session.py):
        # its id and the epoch of the last request, and what the leader knows of each
        # partition (fetch offset, leader epoch); epoch 0 = open a new one
        self._session_id = 0
        self._session_epoch = P.INITIAL_EPOCH
        self._session_token = 0  # changes with every session (stale ``_State.sent``)
        self._session_keys: set[Key] = set()  # the partitions the leader's session has
        # A round costs O(partitions that changed), not O(partitions followed): the view of
        # which partitions fetch and which truncate is rebuilt only when ``_version`` moves
        # (new partitions or epochs, a pause, a truncation starting or ending) or a pause
        # ends; ``_dirty`` holds the fetching partitions whose fetch offset may differ from
        # what the leader's session knows.
        self._version = 0
        self._view: tuple[int, dict[Key, _State], dict[Key, _State]] | None = None
        self._view_until = 0  # the earliest end of a pause seen by the view (ms)
        self._dirty: set[Key] = set()
        self._forgotten: set[Key] = set()  # in the session, no longer fetched
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        # I/O rounds (module docstring): a round runs under ``_turn``, on this fetcher's
        # thread or on the fetch endpoint's I/O thread when an answer arrives
        self._turn = threading.Lock()
        self._inflight: _Flight | None = None
        self._appending: list | None = None  # an I/O round's appends still being answered
        self.io_rounds = 0  # rounds run on the I/O thread so far (tests read it)
        self._thread = threading.Thread(
            target=self._run, name=f"replica-fetcher-{broker_id}-from-{source_id}", daemon=True
        )
        self._log = logger.bind(broker=broker_id, source=source_id)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def empty(self) -> bool:
        with self._lock:
            return not self._partitions

    def set_partitions(self, epochs: dict[Key, int]) -> None:
        """The partitions to follow from this source, with their leader epochs. A new
        partition or a new epoch starts with truncation."""
        with self._lock:
            old = self._partitions
            self._partitions = {
                k: old[k] if k in old and old[k].leader_epoch == e else _State(e)
                for k, e in epochs.items()
            }
            self._version += 1
        self._wake.set()

    def _changed(self) -> None:
        """A partition starts or stops fetching (pause, truncation): rebuild the view."""
        with self._lock:
            self._version += 1

    # ------------------------------------------------------------------------------ loop

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before looking: a later wake-up is not lost
            with self._turn:
                wait = self._step()
            if wait > 0:
                self._wake.wait(wait)

    def _step(self) -> float:
        """This thread, under ``_turn``: apply the answer in flight if it came and no I/O
        round took it, else run a round. How long to wait before the next step (s)."""
        backoff = self._backoff_ms / 1000
        try:
            flight = self._inflight
            if flight is not None:
                if not flight.future.done():
                    left = flight.deadline - time.monotonic()
                    if left > 0:
                        return left
                    self._inflight = None  # the endpoint fails a request before this
                    self._reset_session()
                    return backoff
                self._inflight = None
                if not self._complete(flight):
                    return backoff
            if self._appending is not None:
                appends, self._appending = self._appending, None
                self._collect(appends)
            if self._stop.is_set():
                return 0.0
            return 0.0 if self._round() else backoff
        except Exception:  # noqa: BLE001 - keep fetching; the next round starts over
            self._log.exception("replica fetcher round failed")
            self._start_over()
            return backoff

    def _on_answer(self, future: Future) -> None:
        """The fetch endpoint's I/O thread, a Fetch answered: apply it and send the next
        Fetch here if this fetcher's thread is idle and nothing in it can block (module
        docstring), else wake the thread."""
        if not self._turn.acquire(blocking=False):
            self._wake.set()
            return
        hand_over = True
        try:
            flight = self._inflight
            if flight is None or flight.future is not future or self._stop.is_set():
                return
            resp = self._plain(flight)
            if resp is None:
                return
            self._inflight = None
            appends = self._apply(flight, resp)
            if not all(future is None or _answered(future) for _, _, future in appends):
                self._appending = appends  # a busy partition actor: this thread waits
                return
            self._collect(appends)
            try:
                self._round(io=True)
            except _HandOver:
                return
            self.io_rounds += 1
            hand_over = self._inflight is None  # nothing sent: the thread backs off
        except Exception:  # noqa: BLE001 - the thread starts over (as after a failed round)
            self._log.exception("replica fetcher I/O round failed")
            self._start_over()
        finally:
            self._turn.release()
            if hand_over:
                self._wake.set()

    def _start_over(self) -> None:
        """After a failed round: nothing in flight or pending, a new session (the leader may
        count as sent what we never appended)."""
        self._inflight = None
        self._appending = None
        self._reset_session()

    def _plain(self, flight: _Flight) -> P.FetchResponse | None:
        """The answer if an I/O round may apply it: a FetchResponse without errors,
        divergences or more than IO_ROUND_MAX_BYTES of records (the others take blocking
        asks); else None."""
        if flight.future.exception() is not None:
            return None
        resp = flight.future.result()
        if not isinstance(resp, P.FetchResponse) or resp.error_code != E.NONE:
            return None
        size = 0
        for t in resp.topics:
            for r in t.partitions:
                if r.error_code != E.NONE or r.diverging_epoch >= 0:
                    return None
                size += len(r.records)
        return resp if size <= IO_ROUND_MAX_BYTES else None

    def _ask(self, key: Key, message: object):
        ref = self._replica(key)
        if ref is None:
            return None
        try:
            return ref.ask(message, timeout=ASK_TIMEOUT_S)
        except pykka.ActorDeadError:
            return None

    def _pause(self, state: _State) -> None:
        self._changed()
        state.sent = None
        state.fetch_offset = -1
        state.high_watermark = -1
        state.paused_until_ms = self.clock() + self._backoff_ms * 5

    def _round(self, io: bool = False) -> bool:
        """Truncate what must, then send the session's next Fetch (``_inflight``). True: it
        did something. ``io``: on the I/O thread, where anything that may block raises
        ``_HandOver`` before it changes anything."""
        address = self._address_of(self.source_id)
        if address is None:
            return False
        now = self.clock()
        with self._lock:
            version, partitions = self._version, self._partitions
        view = self._view
        if view is None or view[0] != version or now >= self._view_until:
            states = {k: s for k, s in partitions.items() if s.paused_until_ms <= now}
            self._view_until = min(
                (s.paused_until_ms for s in partitions.values() if s.paused_until_ms > now),
                default=1 << 62,
            )
            truncating = {k: s for k, s in states.items() if s.truncating}
            fetching = {k: s for k, s in states.items() if not s.truncating}
            view = self._view = (version, truncating, fetching)
            self._dirty = set(fetching)  # checked once against what the session knows
            self._forgotten = self._session_keys - fetching.keys()
        _, truncating, fetching = view
        if not truncating and not fetching:
            return False
        if truncating:
            if io:
                raise _HandOver
            self._truncate(address, truncating)
        if not fetching:
            return bool(truncating)
        return self._fetch(address, fetching, io)

    def _truncate(self, address: str, states: dict[Key, _State]) -> None:
        asks: dict[Key, int] = {}
        pending = [
            (key, state, self._tell_ask(key, R.FollowerState(state.leader_epoch)))
            for key, state in states.items()
        ]
        for key, state, future in pending:
            try:
                status = None if future is None else future.get(timeout=ASK_TIMEOUT_S)
            except pykka.ActorDeadError:
                status = None
            if status is None:
                self._pause(state)
                continue
            leo, latest_epoch, _hw = status
            if latest_epoch < 0 and leo == 0:
                state.truncating = False  # nothing to truncate
                self._changed()
                continue
            asks[key] = latest_epoch
        if not asks:
            return
        topics: dict[str, list] = {}
        for (topic, p), epoch in asks.items():
            topics.setdefault(topic, []).append(
                P.OffsetForLeaderEpochPartition(
                    partition=p,
                    current_leader_epoch=states[(topic, p)].leader_epoch,
                    leader_epoch=epoch,
                )
            )
        req = P.OffsetForLeaderEpochRequest(
            replica_id=self.broker_id,
            topics=tuple(
                P.OffsetForLeaderEpochTopic(name=t, partitions=tuple(ps))
                for t, ps in topics.items()
            ),
        )
        try:
            resp = self._endpoint.request(address, req, 5000).result(10)
        except Exception:  # noqa: BLE001 - leader down: back off, metadata will move us
            for key in asks:
                self._pause(states[key])
            return
        if not isinstance(resp, P.OffsetForLeaderEpochResponse):
            for key in asks:
                self._pause(states[key])
            return
        for t in resp.topics:
            for r in t.partitions:
                key = (t.name, r.partition)
                state = states.get(key)
                if state is None:
                    continue
                if r.error_code != E.NONE:
                    self._pause(state)
                    continue
                result = self._ask(
                    key, R.FollowerTruncate(state.leader_epoch, r.leader_epoch, r.end_offset)
                )
                if result is None:
                    self._pause(state)
                    continue
                done, leo, _latest = result
                if done:
                    state.truncating = False
                    self._changed()
                    self._log.debug("{} truncated; fetching from {}", key, leo)

    def _fetch(self, address: str, states: dict[Key, _State], io: bool = False) -> bool:
        """Send the session's next poll. ``states``: every fetching partition; only the
        dirty ones (all when opening a session) are looked at."""
        opening = self._session_epoch == P.INITIAL_EPOCH and self._session_id == 0
        candidates = list(states) if opening else [k for k in self._dirty if k in states]
        if io and any(states[k].fetch_offset < 0 for k in candidates):
            raise _HandOver  # the partition actor must be asked where its log ends
        offsets: dict[Key, int] = {}
        for key in candidates:
            state = states[key]
            if state.fetch_offset >= 0:  # known from our last append: no round trip
                offsets[key] = state.fetch_offset
                continue
            status = self._ask(key, R.FollowerState(state.leader_epoch))
            if status is None:
                self._pause(state)
                continue
            offsets[key] = state.fetch_offset = status[0]
            state.last_epoch = status[1]
        if opening and not offsets:
            return False
        req = self._fetch_request(states, offsets, opening)
        try:
            future = self._endpoint.request(address, req, self._wait_ms + 5000)
        except Exception as e:  # noqa: BLE001 - e.g. the endpoint is closed: as a failure
            future = Future()
            future.set_exception(e)
        deadline = time.monotonic() + self._wait_ms / 1000 + 10
        self._inflight = _Flight(future, req, offsets, states, opening, deadline)
        future.add_done_callback(self._on_answer)
        return True

    def _complete(self, flight: _Flight) -> bool:
        """This thread: apply the answer of ``flight``. False: back off first."""
        try:
            resp = flight.future.result(0)
        except Exception:  # noqa: BLE001 - leader down: back off, then a new session
            self._reset_session()
            return False
        if not isinstance(resp, P.FetchResponse) or resp.error_code != E.NONE:
            self._reset_session()
            retry = isinstance(resp, P.FetchResponse) and resp.error_code in _SESSION_ERRORS
            return retry  # a lost session: open a new one at once
        self._collect(self._apply(flight, resp))
        return True

    def _apply(self, flight: _Flight, resp: P.FetchResponse) -> list:
        """``flight``'s answer, without a session error: the session moves on, each
        partition's data goes to its actor at once (the actors append in parallel on the I/O
        lane, or here when idle); the answers (key, state, future) are collected by the
        caller (``_collect``)."""
        req, offsets, states = flight.request, flight.offsets, flight.states
        self._session_id = resp.session_id
        self._session_epoch = req.session_epoch
        token = self._session_token
        for key, offset in offsets.items():
            states[key].sent = (token, offset, states[key].leader_epoch)
            self._dirty.discard(key)
        if flight.opening:
            self._session_keys = set(offsets)
        else:
            self._session_keys -= self._forgotten
            self._session_keys.update(offsets)
        self._forgotten = set()
        # An incremental answer names only partitions with news.
        appends: list[tuple[Key, _State, object]] = []
        for t in resp.topics:
            for r in t.partitions:
                key = (t.name, r.partition)
                state = states.get(key)
                if state is None or state.fetch_offset < 0:
                    continue
                offset = state.fetch_offset
                if (
                    r.error_code == E.NONE
                    and not r.records
                    and r.high_watermark == state.high_watermark
                    and r.log_start_offset <= state.log_start_offset
                    and r.diverging_epoch < 0
                ):
                    continue  # nothing new for an idle partition: no message to its actor
                self._dirty.add(key)
                state.fetch_offset = -1
                if r.error_code == E.NONE and r.diverging_epoch >= 0:
                    # KIP-320: our last epoch ended earlier on the leader: truncate first
                    state.sent = None
                    self._diverged(key, state, r.diverging_epoch, r.diverging_end_offset)
                elif r.error_code == E.NONE:
                    state.high_watermark = r.high_watermark
                    state.log_start_offset = max(state.log_start_offset, r.log_start_offset)
                    message = R.FollowerAppend(
                        state.leader_epoch, r.records, r.high_watermark, r.log_start_offset
                    )
                    appends.append((key, state, self._tell_ask(key, message)))
                else:
                    state.sent = None  # the leader stopped watching it: name it again
                    self._handle_error(key, state, offset, r)
        return appends

    def _reset_session(self) -> None:
        self._session_id = 0
        self._session_epoch = P.INITIAL_EPOCH
        self._session_token += 1
        self._session_keys = set()
        self._forgotten = set()

    def _fetch_request(self, states: dict[Key, _State], offsets: dict[Key, int], opening: bool):
        """The next request of the session: every partition when opening one, else those
        whose fetch offset or leader epoch the leader does not know, and the forgotten."""
        if opening:
            epoch, changed, forgotten = P.INITIAL_EPOCH, offsets, ()
        else:
            epoch = self._session_epoch + 1 if self._session_epoch < (1 << 31) - 1 else 1
            token = self._session_token
            changed = {
                k: o
                for k, o in offsets.items()
                if states[k].sent != (token, o, states[k].leader_epoch)
            }
            gone: dict[str, list[int]] = {}
            for topic, p in self._forgotten:
                gone.setdefault(topic, []).append(p)
            forgotten = tuple(
                P.FetchForgottenTopic(name=t, partitions=tuple(sorted(ps)))
                for t, ps in sorted(gone.items())
            )
        topics: dict[str, list] = {}
        for (topic, p), offset in changed.items():
            topics.setdefault(topic, []).append(
                P.FetchPartition(
                    partition=p,
                    fetch_offset=offset,
                    partition_max_bytes=self._max_bytes,
                    current_leader_epoch=states[(topic, p)].leader_epoch,
                    last_fetched_epoch=states[(topic, p)].last_epoch,
                )
            )
        return P.FetchRequest(
            replica_id=self.broker_id,
            replica_incarnation=self.incarnation,
            max_wait_ms=self._wait_ms,
            min_bytes=1,
            max_bytes=max(self._max_bytes * 10, self._max_bytes),
            topics=tuple(P.FetchTopic(name=t, partitions=tuple(ps)) for t, ps in topics.items()),
            session_id=self._session_id,
            session_epoch=epoch,
            forgotten_topics=forgotten,
        )

    def _tell_ask(self, key: Key, message: object):
        """An ask without waiting: the future of the answer, or None (no such actor). An
        idle replica handles it on this thread at once (runtime.ask_inline), so a fetch's
        partitions are applied in one pass; a busy one in its own turn."""
        ref = self._replica(key)
        if ref is None:
            return None
        return ask_inline(ref, message)

    def _collect(self, appends: list) -> None:
        """The answers of ``_apply``'s appends, in order (waits for a busy actor's)."""
        for key, state, future in appends:
            self._appended(key, state, future)

    def _appended(self, key: Key, state: _State, future) -> None:
        try:
            leo = None if future is None else future.get(timeout=ASK_TIMEOUT_S)
        except pykka.ActorDeadError:
            leo = None
        except Exception as e:  # noqa: BLE001 - e.g. unexpected offset: truncate again
            self._log.warning("{}: append of fetched data failed ({}); truncating", key, e)
            state.truncating = True
            state.sent = None
            state.high_watermark = -1
            self._changed()
            return
        if leo is None:
            self._pause(state)
        else:
            state.fetch_offset, state.last_epoch = leo
            self._dirty.add(key)

    def _diverged(self, key: Key, state: _State, epoch: int, end_offset: int) -> None:
        """The leader says our log diverges at (epoch, end_offset) (KIP-320): truncate as
        after an OffsetForLeaderEpoch answer, then fetch from the new end."""
        self._log.info("{}: diverges from the leader at epoch {} offset {}", key, epoch,
                       end_offset)
        result = self._ask(key, R.FollowerTruncate(state.leader_epoch, epoch, end_offset))
        if result is None:
            self._pause(state)
            return
        done, _leo, _latest = result
        if not done:  # a further look is needed: the OffsetForLeaderEpoch round does it
            state.truncating = True
            self._changed()

    def _handle_error(
        self, key: Key, state: _State, offset: int, r: P.FetchPartitionResponse
    ) -> None:
        if r.error_code == E.OFFSET_OUT_OF_RANGE:
            if r.log_start_offset > offset:
                self._log.info(
                    "{}: behind the leader's log start {}; reset", key, r.log_start_offset
                )
                self._ask(key, R.FollowerReset(state.leader_epoch, r.log_start_offset))
            else:
                state.truncating = True
                state.sent = None
                self._changed()
            return
        if r.error_code in _STALE:
            self._pause(state)
            return
        self._log.warning("{}: fetch error {}", key, r.error_code)
        self._pause(state)
