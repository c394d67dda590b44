"""Share sessions of the KAFKA listener (actors/kafka_share_sessions.py): Kafka's epoch rules
for ShareFetch and ShareAcknowledge, added and forgotten partitions, close, idle expiry and
the session limit."""

from __future__ import annotations

from kio.schema.errors import ErrorCode as E
from rillet.actors.kafka_share_sessions import MAX_EPOCH, ShareSessions, next_epoch

KEY = ("g", "m")


def test_a_session_opens_at_epoch_0_and_each_request_carries_the_next_epoch() -> None:
    s = ShareSessions()
    opened = s.fetch(KEY, 0, [("t", 0), ("t", 1)], [], False, now_ms=0)
    assert opened.error == E.none and opened.partitions == (("t", 0), ("t", 1))
    assert s.fetch(KEY, 1, [("u", 0)], [("t", 0)], True, 1).partitions == (("t", 1), ("u", 0))
    assert s.acknowledge(KEY, 2, 2).partitions == (("t", 1), ("u", 0))
    assert s.fetch(KEY, 3, [], [], False, 3).error == E.none
    stale = s.fetch(KEY, 3, [], [], False, 4)  # the same epoch again: a replay
    assert stale.error == E.invalid_share_session_epoch
    assert s.fetch(KEY, 4, [], [], False, 5).error == E.none  # the refusal changed nothing


def test_requests_without_a_session_or_opening_one_wrongly_are_refused() -> None:
    s = ShareSessions()
    assert s.fetch(KEY, 1, [("t", 0)], [], False, 0).error == E.share_session_not_found
    assert s.fetch(KEY, -1, [], [], True, 0).error == E.share_session_not_found
    assert s.acknowledge(KEY, 1, 0).error == E.share_session_not_found
    assert s.acknowledge(KEY, 0, 0).error == E.invalid_share_session_epoch
    assert s.fetch(KEY, 0, [("t", 0)], [], True, 0).error == E.invalid_request  # acks at 0
    assert len(s) == 0


def test_epoch_minus_one_acknowledges_and_closes_and_epoch_0_replaces() -> None:
    s = ShareSessions()
    s.fetch(KEY, 0, [("t", 0)], [], False, 0)
    final = s.fetch(KEY, -1, [("t", 0)], [], True, 1)
    assert final.error == E.none and final.final and final.partitions == (("t", 0),)
    assert final.closed == (("t", 0),)
    assert s.fetch(KEY, 1, [], [], False, 2).error == E.share_session_not_found
    s.fetch(KEY, 0, [("t", 0)], [], False, 3)
    s.fetch(KEY, 0, [("u", 0)], [], False, 4)  # a new session replaces the old one
    assert s.fetch(KEY, 1, [], [], False, 5).partitions == (("u", 0),)
    closed = s.acknowledge(KEY, -1, 6)
    assert closed.final and closed.closed == (("u", 0),) and len(s) == 0


def test_idle_sessions_are_forgotten_and_the_limit_holds() -> None:
    s = ShareSessions(max_sessions=2, idle_ms=1000)
    s.fetch(("g", "a"), 0, [], [], False, 0)
    s.fetch(("g", "b"), 0, [], [], False, 0)
    full = s.fetch(("g", "c"), 0, [], [], False, 500)
    assert full.error == E.share_session_limit_reached
    assert s.fetch(("g", "a"), 1, [], [], False, 900).error == E.none  # used: kept
    assert s.fetch(("g", "c"), 0, [], [], False, 1800).error == E.none  # "b" was idle
    assert s.fetch(("g", "b"), 1, [], [], False, 1800).error == E.share_session_not_found
    assert s.fetch(("g", "a"), 2, [], [], False, 3000).error == E.share_session_not_found


def test_the_epoch_wraps_to_1() -> None:
    assert next_epoch(1) == 2 and next_epoch(MAX_EPOCH) == 1
