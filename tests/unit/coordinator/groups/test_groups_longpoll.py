"""Heartbeats as long polls (coordinator/groups/longpoll.py): which answers may be held, which
held heartbeats must be handled again after a change, and that handling one again is an
ordinary heartbeat (revoke before assign, epochs, fencing unchanged)."""

from __future__ import annotations

import pytest
from rillet.coordinator.groups import ConsumerGroupHeartbeatRequest, MemberState
from rillet.coordinator.groups.errors import InvalidRequestError
from rillet.coordinator.groups.longpoll import needs_answer, park_deadline, touched_groups

from .harness import Harness, tps

pytestmark = pytest.mark.timeout(30)


def held(h: Harness, member_id: str, epoch: int, owned, max_wait_ms: int = 5000):
    """Send a heartbeat as a long poll; (request, response, deadline or None)."""
    req = ConsumerGroupHeartbeatRequest(group_id="g", member_id=member_id, member_epoch=epoch,
                                        owned_partitions=owned, max_wait_ms=max_wait_ms)
    resp = h.run(h.gc.heartbeat(h.state, req, h.topics, h.now))
    return req, resp, park_deadline(h.gc.config, req, resp, h.now)


def stable_a(h: Harness):
    return h.ack(h.join("a"))


def test_an_answer_with_nothing_new_is_held_for_at_most_the_interval() -> None:
    h = Harness()
    a = stable_a(h)
    h.now = 1000
    _req, resp, until = held(h, "a", a.member_epoch, a.assignment, max_wait_ms=60_000)
    assert resp.member_epoch == a.member_epoch and resp.assignment == a.assignment
    assert until == 1000 + 5000  # capped by group.consumer.heartbeat.interval.ms
    _req, _resp, until = held(h, "a", a.member_epoch, a.assignment, max_wait_ms=700)
    assert until == 1000 + 700  # and by what the member asked for


def test_the_hold_stays_below_the_session_timeout() -> None:
    h = Harness(session_timeout_ms=6000, heartbeat_interval_ms=5000)
    a = stable_a(h)
    _req, _resp, until = held(h, "a", a.member_epoch, a.assignment)
    assert until == 3000


def test_answers_that_tell_something_are_never_held() -> None:
    h = Harness()
    a = h.join("a")
    # a join: never held
    req = ConsumerGroupHeartbeatRequest(group_id="g", member_id="a", member_epoch=0,
                                        max_wait_ms=5000)
    assert park_deadline(h.gc.config, req, a, 0) is None
    # the member has not yet taken what it was given (assignment != owned)
    _req, resp, until = held(h, "a", a.member_epoch, frozenset())
    assert resp.assignment == tps("t:0,1,2,3") and until is None
    h.ack(a)
    b = h.join("b")
    # a new epoch with a revocation: a must hear it now
    _req, resp, until = held(h, "a", a.member_epoch, a.assignment)
    assert resp.assignment != a.assignment and until is None
    # no long poll asked for, or owned partitions not sent: answered at once
    assert held(h, "b", b.member_epoch, b.assignment, max_wait_ms=0)[2] is None
    req = ConsumerGroupHeartbeatRequest(group_id="g", member_id="b",
                                        member_epoch=b.member_epoch, max_wait_ms=5000)
    resp = h.run(h.gc.heartbeat(h.state, req, h.topics, h.now))
    assert park_deadline(h.gc.config, req, resp, h.now) is None


def test_a_negative_max_wait_is_refused() -> None:
    h = Harness()
    a = stable_a(h)
    with pytest.raises(InvalidRequestError):
        held(h, "a", a.member_epoch, a.assignment, max_wait_ms=-1)


def test_a_join_wakes_the_held_member_and_handling_it_again_revokes_first() -> None:
    h = Harness()
    a = stable_a(h)
    req_a, _resp, until = held(h, "a", a.member_epoch, a.assignment)
    assert until is not None and not needs_answer(h.state, "g", "a")
    before = h.state
    b = h.join("b")
    assert "g" in touched_groups(h.log[-3:])
    assert needs_answer(h.state, "g", "a") and not needs_answer(before, "g", "a")
    # the actor handles a's held request again, exactly as sent
    resp = h.run(h.gc.heartbeat(h.state, req_a, h.topics, h.now))
    assert h.member("a").state is MemberState.UNREVOKED_PARTITIONS
    assert resp.assignment < a.assignment  # told to give some up; nothing new yet
    assert park_deadline(h.gc.config, req_a, resp, h.now) is None
    h.assert_no_double_ownership()
    # b, held while it waits for the partitions a releases, is woken by a's revocation
    req_b, resp_b, until_b = held(h, "b", b.member_epoch, b.assignment)
    assert resp_b.assignment == frozenset() and until_b is not None
    assert needs_answer(h.state, "g", "b")  # unreleased partitions: look again on change
    again = h.run(h.gc.heartbeat(h.state, req_b, h.topics, h.now))
    assert park_deadline(h.gc.config, req_b, again, h.now) is not None  # still waiting
    h.hb("a", resp.member_epoch, owned=resp.assignment)  # a revoked
    resp_b = h.run(h.gc.heartbeat(h.state, req_b, h.topics, h.now))
    assert resp_b.assignment == h.group().target["b"]
    assert park_deadline(h.gc.config, req_b, resp_b, h.now) is None
    h.assert_no_double_ownership()


def test_a_held_member_that_left_or_was_evicted_needs_an_answer() -> None:
    h = Harness(session_timeout_ms=1000, heartbeat_interval_ms=400)
    a = stable_a(h)
    b = h.join("b")
    a = h.hb("a", a.member_epoch, owned=a.assignment)  # told to revoke
    a = h.hb("a", a.member_epoch, owned=a.assignment)  # revoked
    b = h.hb("b", b.member_epoch, owned=frozenset())  # gets the released partitions
    b = h.ack(b)
    assert h.group().state.value == "Stable"
    assert not needs_answer(h.state, "g", "a") and not needs_answer(h.state, "g", "b")
    h.hb("b", -1)  # b leaves: a has a new target, b is gone
    assert needs_answer(h.state, "g", "a") and needs_answer(h.state, "g", "b")
    h.now = 5000
    h.tick(h.now)  # a silent: evicted, the group is empty
    assert needs_answer(h.state, "g", "a")
    assert needs_answer(h.state, "nope", "x")
