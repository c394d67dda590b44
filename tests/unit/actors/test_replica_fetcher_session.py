"""The follower side of a fetch session (actors/replica_fetcher.py) against a fake leader and
fake partition actors, one round at a time: the first request names every partition, an idle
round names none, a partition that appended is named again with its new offset, a partition
answered with an error is forgotten, a lost session starts over. Then the I/O rounds, with
the fetcher's thread running: which thread applies an answer and sends the next Fetch."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pykka
import pytest
from rillet.actors import partition as R
from rillet.actors.replica_fetcher import IO_ROUND_MAX_BYTES, ReplicaFetcher
from rillet.transport import protocol as P

E = P.ErrorCode
KEYS = [("t", p) for p in range(20)]


class Done:
    def __init__(self, value) -> None:
        self.value = value

    def result(self, timeout=None):
        return self.value

    def get(self, timeout=None):
        return self.value


class FakeLeader:
    """Answers each Fetch with the next scripted topics (or an error)."""

    def __init__(self) -> None:
        self.requests: list[P.FetchRequest] = []
        self.next: list = []

    def request(self, address, req, timeout_ms):
        self.requests.append(req)
        answer = self.next.pop(0) if self.next else ()
        future = Future()
        if isinstance(answer, int):
            future.set_result(P.FetchResponse(error_code=answer))
        else:
            future.set_result(P.FetchResponse(session_id=7, topics=answer))
        return future


class FakeReplica:
    def __init__(self) -> None:
        self.leo = 0
        self.epoch = 0
        self.truncations: list[tuple[int, int]] = []

    def ask(self, message, timeout=None, block=True):
        match message:
            case R.FollowerState():
                value = (self.leo, self.epoch, 0)
            case R.FollowerAppend(records=records):
                self.leo += len(records)  # one "record" per byte, enough here
                value = (self.leo, self.epoch)  # log end offset, last epoch
            case R.FollowerTruncate(epoch=epoch, end_offset=end):
                self.truncations.append((epoch, end))
                self.leo, self.epoch = min(self.leo, end), epoch
                value = (True, self.leo, self.epoch)
            case _:
                value = None
        return value if block else Done(value)


def make():
    leader = FakeLeader()
    replicas = {k: FakeReplica() for k in KEYS}
    f = ReplicaFetcher(
        2,
        1,
        address_of=lambda b: "tcp://leader",
        endpoint=leader,
        replica=replicas.get,
        fetch_wait_ms=0,
    )
    f.set_partitions({k: 0 for k in KEYS})
    for state in f._partitions.values():  # as if truncation were done
        state.truncating = False
    return f, leader, replicas


def go(f) -> bool:
    """One round on the fetcher's thread: send, then apply the (already given) answer."""
    with f._turn:
        worked = f._round()
        flight, f._inflight = f._inflight, None
        return worked if flight is None else f._complete(flight)


def named(req) -> set:
    return {(t.name, p.partition) for t in req.topics for p in t.partitions}


def forgotten(req) -> set:
    return {(t.name, p) for t in req.forgotten_topics for p in t.partitions}


def part(p, records=b"", hw=0, code=0):
    return P.FetchTopicResponse(
        name="t",
        partitions=(
            P.FetchPartitionResponse(
                partition=p, error_code=code, high_watermark=hw, records=records
            ),
        ),
    )


def test_a_session_names_only_what_changed() -> None:
    f, leader, replicas = make()
    assert go(f)
    first = leader.requests[-1]
    assert first.session_epoch == P.INITIAL_EPOCH and named(first) == set(KEYS)
    assert go(f)  # idle
    idle = leader.requests[-1]
    assert (idle.session_id, idle.session_epoch) == (7, 1)
    assert named(idle) == set() and forgotten(idle) == set()
    leader.next = [(part(3, b"abc", hw=3),)]
    assert go(f)  # partition 3 gets records and appends them
    assert replicas[("t", 3)].leo == 3
    assert go(f)
    after = leader.requests[-1]
    assert named(after) == {("t", 3)} and after.session_epoch == 3
    assert [p.fetch_offset for t in after.topics for p in t.partitions] == [3]
    assert go(f)
    assert named(leader.requests[-1]) == set()


def test_an_error_forgets_the_partition_and_a_lost_session_starts_over() -> None:
    f, leader, _ = make()
    go(f)
    leader.next = [(part(5, code=E.NOT_LEADER_OR_FOLLOWER),)]
    go(f)  # partition 5 is paused
    go(f)
    assert forgotten(leader.requests[-1]) == {("t", 5)}
    go(f)
    assert forgotten(leader.requests[-1]) == set()
    leader.next = [E.FETCH_SESSION_ID_NOT_FOUND]
    assert go(f)  # retried at once
    go(f)
    again = leader.requests[-1]
    assert again.session_epoch == P.INITIAL_EPOCH and named(again) == set(KEYS) - {("t", 5)}


def test_the_last_fetched_epoch_is_sent_and_a_divergence_truncates_first() -> None:
    """KIP-320: every fetch names the epoch of the follower's last batch; an answer with a
    diverging epoch truncates the partition there before it fetches again."""
    f, leader, replicas = make()
    replica = replicas[("t", 4)]
    replica.leo, replica.epoch = 9, 3
    f._partitions[("t", 4)].fetch_offset = -1  # learn the offset and epoch from the actor
    go(f)
    sent = {(t.name, p.partition): p for t in leader.requests[-1].topics for p in t.partitions}
    assert (sent[("t", 4)].fetch_offset, sent[("t", 4)].last_fetched_epoch) == (9, 3)
    diverging = P.FetchTopicResponse(
        name="t",
        partitions=(
            P.FetchPartitionResponse(
                partition=4, high_watermark=0, diverging_epoch=2, diverging_end_offset=6
            ),
        ),
    )
    leader.next = [(diverging,)]
    go(f)
    assert replica.truncations == [(2, 6)] and replica.leo == 6
    go(f)
    again = {(t.name, p.partition): p for t in leader.requests[-1].topics for p in t.partitions}
    assert (again[("t", 4)].fetch_offset, again[("t", 4)].last_fetched_epoch) == (6, 2)


# ------------------------------------------------------------------------------ I/O rounds


class PendingLeader:
    """Hands out unanswered Futures, as the fetch endpoint does; the test answers them from
    a thread of its own, as the endpoint's I/O thread would. Records which thread sent each
    request."""

    def __init__(self) -> None:
        self.sent: list[tuple[P.FetchRequest, Future, str]] = []
        self.cond = threading.Condition()

    def request(self, address, req, timeout_ms):
        future = Future()
        with self.cond:
            self.sent.append((req, future, threading.current_thread().name))
            self.cond.notify_all()
        return future

    def wait_for(self, n: int) -> tuple[P.FetchRequest, Future, str]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.sent) >= n, timeout=10), self.sent
            return self.sent[n - 1]


class SlowReplica(FakeReplica):
    """Its appends are answered only when the test says so (a partition actor busy with
    another turn)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def ask(self, message, timeout=None, block=True):
        if block or not isinstance(message, R.FollowerAppend):
            return super().ask(message, timeout, block)
        answer = pykka.ThreadingFuture()

        def later() -> None:
            self.release.wait(10)
            answer.set(super(SlowReplica, self).ask(message, timeout, True))

        threading.Thread(target=later, daemon=True).start()
        return answer


def started(replicas):
    leader = PendingLeader()
    f = ReplicaFetcher(
        2, 1, address_of=lambda b: "tcp://leader", endpoint=leader, replica=replicas.get,
        fetch_wait_ms=0,
    )
    f.set_partitions({k: 0 for k in replicas})
    for state in f._partitions.values():
        state.truncating = False
    f.start()
    return f, leader


def answer_on_io_thread(future: Future, topics) -> str:
    """Answer ``future`` from a thread named as the endpoint's I/O thread; its name."""
    io = threading.Thread(
        target=future.set_result, args=(P.FetchResponse(session_id=7, topics=topics),),
        name="fetch-io",
    )
    io.start()
    io.join(10)
    return io.name


@pytest.mark.timeout(30)
def test_the_io_thread_applies_an_answer_and_sends_the_next_fetch() -> None:
    """The answer's records are appended and the next Fetch (naming the new offset) sent on
    the thread that delivered the answer, without waking the fetcher's thread."""
    replicas = {k: FakeReplica() for k in KEYS[:3]}
    f, leader = started(replicas)
    try:
        first, future, thread = leader.wait_for(1)
        assert thread.startswith("replica-fetcher-") and named(first) == set(replicas)
        io = answer_on_io_thread(future, (part(1, b"abcd", hw=4),))
        second, _, thread = leader.wait_for(2)
        assert thread == io and f.io_rounds == 1
        assert replicas[("t", 1)].leo == 4
        assert [p.fetch_offset for t in second.topics for p in t.partitions] == [4]
    finally:
        f.stop()
        f.join(5)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("answer", ["large", "error", "session"])
def test_answers_that_may_block_are_left_to_the_fetcher_thread(answer) -> None:
    """A catch-up larger than IO_ROUND_MAX_BYTES, a partition error (it may ask its actor)
    and a lost session are applied by the fetcher's own thread, as before I/O rounds."""
    replicas = {k: FakeReplica() for k in KEYS[:3]}
    f, leader = started(replicas)
    try:
        _, future, _ = leader.wait_for(1)
        if answer == "large":
            records = b"x" * (IO_ROUND_MAX_BYTES + 1)
            answer_on_io_thread(future, (part(2, records, hw=len(records)),))
        elif answer == "error":
            answer_on_io_thread(future, (part(2, code=E.NOT_LEADER_OR_FOLLOWER),))
        else:
            future.set_result(P.FetchResponse(error_code=E.FETCH_SESSION_ID_NOT_FOUND))
        second, _, thread = leader.wait_for(2)
        assert thread.startswith("replica-fetcher-") and f.io_rounds == 0
        if answer == "large":
            assert replicas[("t", 2)].leo == IO_ROUND_MAX_BYTES + 1
            assert [p.fetch_offset for t in second.topics for p in t.partitions] == [
                IO_ROUND_MAX_BYTES + 1
            ]
        elif answer == "error":
            assert forgotten(second) == {("t", 2)}
        else:
            assert second.session_epoch == P.INITIAL_EPOCH and named(second) == set(replicas)
    finally:
        f.stop()
        f.join(5)


@pytest.mark.timeout(30)
def test_a_busy_partition_actor_is_waited_for_on_the_fetcher_thread() -> None:
    """An append the partition actor answers later is not waited for on the I/O thread: the
    fetcher's thread collects it, then fetches from the new offset."""
    replicas = {k: SlowReplica() for k in KEYS[:2]}
    f, leader = started(replicas)
    try:
        _, future, _ = leader.wait_for(1)
        answer_on_io_thread(future, (part(0, b"abc", hw=3),))  # returns: nothing waits
        assert len(leader.sent) == 1 and f.io_rounds == 0
        replicas[("t", 0)].release.set()
        second, _, thread = leader.wait_for(2)
        assert thread.startswith("replica-fetcher-")
        assert [p.fetch_offset for t in second.topics for p in t.partitions] == [3]
    finally:
        f.stop()
        f.join(5)
