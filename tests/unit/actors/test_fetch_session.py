"""The leader side of a follower's fetch session (actors/fetch_session.py), driven directly:
polls, notifications, generations, carried-over answers. No threads, no sockets: the ticker
is a fake whose timers the test fires."""

from __future__ import annotations

from rillet.actors import fetch_session as FS
from rillet.transport import protocol as P

E = P.ErrorCode
A0, A1 = ("a", 0), ("a", 1)


class Timers:
    def __init__(self) -> None:
        self.due: list = []

    def call_later(self, delay: float, fn):
        timer = _Timer(fn)
        self.due.append(timer)
        return timer

    def fire(self) -> None:
        due, self.due = self.due, []
        for t in due:
            if not t.cancelled:
                t.fn()


class _Timer:
    def __init__(self, fn) -> None:
        self.fn, self.cancelled = fn, False

    def cancel(self) -> None:
        self.cancelled = True


def answer(partition: int, hw: int, records: bytes = b"", code: int = 0):
    return P.FetchPartitionResponse(
        partition=partition, error_code=code, high_watermark=hw, records=records
    )


def new_session():
    timers = Timers()
    sessions = FS.FetchSessions(FS.Counters(), timers.call_later)
    return sessions, sessions.open(2), timers


def poll(session, epoch, changed=(), forgotten=(), max_bytes=1 << 20):
    sent: list = []
    begun = session.begin(
        epoch,
        list(changed),
        list(forgotten),
        sent.append,
        1000,
        min_bytes=1,
        max_bytes=max_bytes,
        max_wait_ms=500,
    )
    return begun, sent


def parts(response) -> dict:
    return {(t.name, p.partition): p for t in response.topics for p in t.partitions}


def test_an_idle_poll_parks_and_is_answered_empty_at_its_deadline() -> None:
    _, s, timers = new_session()
    (p0, gens), sent = poll(s, P.INITIAL_EPOCH, [A0, A1])
    s.immediate(p0, A0, gens[A0], answer(0, 5))
    s.immediate(p0, A1, gens[A1], answer(1, 7))
    assert sent == [] and len(timers.due) == 1  # nothing new: parked
    timers.fire()
    assert len(sent) == 1 and set(parts(sent[0])) == {A0, A1}
    assert sent[0].session_id == s.session_id
    (_, gens2), sent2 = poll(s, 1)  # incremental, nothing changed: no partition named
    assert gens2 == {} and sent2 == []
    timers.fire()
    assert sent2[0].topics == ()


def test_a_notification_answers_the_parked_poll_at_once() -> None:
    _, s, timers = new_session()
    (p0, gens), sent = poll(s, P.INITIAL_EPOCH, [A0])
    s.immediate(p0, A0, gens[A0], answer(0, 5))
    timers.fire()
    _, sent = poll(s, 1)
    assert sent == []
    assert s.notify(A0, gens[A0], answer(0, 5, b"rec"))
    assert parts(sent[0])[A0].records == b"rec"


def test_news_between_polls_waits_for_the_next_one_and_keeps_its_records() -> None:
    _, s, timers = new_session()
    (p0, gens), _ = poll(s, P.INITIAL_EPOCH, [A0])
    s.immediate(p0, A0, gens[A0], answer(0, 5))
    timers.fire()
    # two notifications while no poll is open: the records stay, the later HW wins
    assert s.notify(A0, gens[A0], answer(0, 5, b"rec"))
    assert s.notify(A0, gens[A0], answer(0, 9))
    _, sent = poll(s, 1)
    got = parts(sent[0])[A0]
    assert (got.records, got.high_watermark) == (b"rec", 9)


def test_stale_generations_and_forgotten_partitions_are_refused() -> None:
    _, s, timers = new_session()
    (p0, gens), _ = poll(s, P.INITIAL_EPOCH, [A0, A1])
    s.immediate(p0, A0, gens[A0], answer(0, 5))
    s.immediate(p0, A1, gens[A1], answer(1, 5))
    timers.fire()
    (p1, gens1), sent = poll(s, 1, changed=[A0], forgotten=[A1])
    assert gens1[A0] != gens[A0]
    assert not s.notify(A0, gens[A0], answer(0, 6))  # the Read before the new one
    assert not s.notify(A1, gens[A1], answer(1, 6))  # forgotten
    assert s.last_poll_for(A1, gens[A1]) is None
    assert s.last_poll_for(A0, gens1[A0]) == 1000
    s.immediate(p1, A0, gens1[A0], answer(0, 6, b"x"))
    assert parts(sent[0])[A0].records == b"x"


def test_wrong_epochs_and_replaced_sessions() -> None:
    sessions, s, _ = new_session()
    assert poll(s, 5)[0] is None  # the session is at epoch 0: the next is 1
    assert sessions.get(s.session_id, 2) is s
    assert sessions.get(s.session_id, 3) is None  # another follower's id
    s2 = sessions.open(2)
    assert s.closed and sessions.get(s.session_id, 2) is None and sessions.get(s2.session_id, 2)
    assert poll(s, 1)[0] is None


def test_an_answer_that_misses_its_poll_or_the_byte_cap_is_carried_to_the_next() -> None:
    _, s, timers = new_session()
    (p0, gens), sent = poll(s, P.INITIAL_EPOCH, [A0, A1], max_bytes=4)
    s.immediate(p0, A0, gens[A0], answer(0, 5, b"aaaa"))
    s.immediate(p0, A1, gens[A1], answer(1, 5, b"bbbb"))
    first = parts(sent[0])
    assert len([k for k, r in first.items() if r.records]) == 1  # one fits under the cap
    (_, _), sent = poll(s, 1)
    second = parts(sent[0])  # the other one at once, without waiting
    assert {first_key for first_key in first if first[first_key].records} | set(second) == {
        A0,
        A1,
    }
    assert all(r.records for r in second.values())


def two_partitions_polled():
    """A session whose first poll named A0 and A1 (high watermark 5) and was answered."""
    _, s, timers = new_session()
    (p0, gens), _ = poll(s, P.INITIAL_EPOCH, [A0, A1])
    s.immediate(p0, A0, gens[A0], answer(0, 5))
    s.immediate(p0, A1, gens[A1], answer(1, 5))
    timers.fire()
    return s, timers, gens


def test_a_high_watermark_alone_answers_no_poll_and_rides_with_its_records() -> None:
    s, timers, gens = two_partitions_polled()
    _, sent = poll(s, 1)
    assert s.notify(A1, gens[A1], answer(1, 8), urgent=False)
    assert sent == []  # parked still: a new high watermark alone is not worth an answer
    assert s.notify(A0, gens[A0], answer(0, 5, b"rec"))
    assert set(parts(sent[0])) == {A0}  # A1's high watermark waits for A1's records
    _, sent = poll(s, 2)
    assert sent == []
    assert s.notify(A1, gens[A1], answer(1, 9, b"more"))
    got = parts(sent[0])[A1]  # one answer for A1: its records and its latest high watermark
    assert (got.records, got.high_watermark) == (b"more", 9)


def test_a_held_high_watermark_goes_with_the_polls_deadline_answer() -> None:
    s, timers, gens = two_partitions_polled()
    _, sent = poll(s, 1)
    assert s.notify(A1, gens[A1], answer(1, 8), urgent=False)
    assert sent == []
    timers.fire()  # the poll's max_wait_ms: an idle follower is told
    assert parts(sent[0])[A1].high_watermark == 8


def test_an_explicit_answer_with_only_a_high_watermark_is_held_like_a_notified_one() -> None:
    s, timers, gens = two_partitions_polled()
    # the follower reports its new fetch offset for A1; the answer has no records
    (p1, gens1), sent = poll(s, 1, changed=[A1])
    s.immediate(p1, A1, gens1[A1], answer(1, 6))
    assert sent == []  # parked
    assert s.notify(A0, gens[A0], answer(0, 5, b"rec"))
    assert set(parts(sent[0])) == {A0}
    _, sent = poll(s, 2)
    timers.fire()
    assert parts(sent[0])[A1].high_watermark == 6  # at the next deadline


def test_a_high_watermark_held_too_long_goes_with_any_answer(monkeypatch) -> None:
    s, timers, gens = two_partitions_polled()
    _, sent = poll(s, 1)
    assert s.notify(A1, gens[A1], answer(1, 8), urgent=False)
    monkeypatch.setattr(FS, "HW_HOLD_S", 0.0)  # as if it had waited HW_HOLD_S
    assert s.notify(A0, gens[A0], answer(0, 5, b"rec"))
    assert set(parts(sent[0])) == {A0, A1} and parts(sent[0])[A1].high_watermark == 8
    (_, _), sent = poll(s, 2)
    assert sent == [] and [t for t in timers.due if not t.cancelled]  # nothing held: parked


def test_a_held_high_watermark_of_a_forgotten_partition_is_dropped() -> None:
    s, timers, gens = two_partitions_polled()
    _, sent1 = poll(s, 1)
    assert s.notify(A1, gens[A1], answer(1, 8), urgent=False)  # held
    _, sent2 = poll(s, 2, forgotten=[A1])  # the follower stops fetching A1 here
    timers.fire()
    assert len(sent1) == len(sent2) == 1
    assert A1 not in parts(sent1[0]) and A1 not in parts(sent2[0])
    assert s.notify(A1, gens[A1], answer(1, 9), urgent=False) is False
