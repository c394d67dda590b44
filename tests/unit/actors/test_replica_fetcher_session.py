"""The follower side of a fetch session (actors/replica_fetcher.py) against a fake leader and
fake partition actors, one round at a time: the first request names every partition, an idle
round names none, a partition that appended is named again with its new offset, a partition
answered with an error is forgotten, a lost session starts over."""

from __future__ import annotations

from rillet.actors import partition as R
from rillet.actors.replica_fetcher import ReplicaFetcher
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
        if isinstance(answer, int):
            return Done(P.FetchResponse(error_code=answer))
        return Done(P.FetchResponse(session_id=7, topics=answer))


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
    assert f._round()
    first = leader.requests[-1]
    assert first.session_epoch == P.INITIAL_EPOCH and named(first) == set(KEYS)
    assert f._round()  # idle
    idle = leader.requests[-1]
    assert (idle.session_id, idle.session_epoch) == (7, 1)
    assert named(idle) == set() and forgotten(idle) == set()
    leader.next = [(part(3, b"abc", hw=3),)]
    assert f._round()  # partition 3 gets records and appends them
    assert replicas[("t", 3)].leo == 3
    assert f._round()
    after = leader.requests[-1]
    assert named(after) == {("t", 3)} and after.session_epoch == 3
    assert [p.fetch_offset for t in after.topics for p in t.partitions] == [3]
    assert f._round()
    assert named(leader.requests[-1]) == set()


def test_an_error_forgets_the_partition_and_a_lost_session_starts_over() -> None:
    f, leader, _ = make()
    f._round()
    leader.next = [(part(5, code=E.NOT_LEADER_OR_FOLLOWER),)]
    f._round()  # partition 5 is paused
    f._round()
    assert forgotten(leader.requests[-1]) == {("t", 5)}
    f._round()
    assert forgotten(leader.requests[-1]) == set()
    leader.next = [E.FETCH_SESSION_ID_NOT_FOUND]
    assert f._round()  # retried at once
    f._round()
    again = leader.requests[-1]
    assert again.session_epoch == P.INITIAL_EPOCH and named(again) == set(KEYS) - {("t", 5)}


def test_the_last_fetched_epoch_is_sent_and_a_divergence_truncates_first() -> None:
    """KIP-320: every fetch names the epoch of the follower's last batch; an answer with a
    diverging epoch truncates the partition there before it fetches again."""
    f, leader, replicas = make()
    replica = replicas[("t", 4)]
    replica.leo, replica.epoch = 9, 3
    f._partitions[("t", 4)].fetch_offset = -1  # learn the offset and epoch from the actor
    f._round()
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
    f._round()
    assert replica.truncations == [(2, 6)] and replica.leo == 6
    f._round()
    again = {(t.name, p.partition): p for t in leader.requests[-1].topics for p in t.partitions}
    assert (again[("t", 4)].fetch_offset, again[("t", 4)].last_fetched_epoch) == (6, 2)
