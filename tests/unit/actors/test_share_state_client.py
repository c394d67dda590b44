"""ShareStateClient (actors/share_state_client.py) with a fake FindCoordinator, fake
inter-broker requests and a manual scheduler: the answer goes to the coordinator's
inter-broker address; moves, loads, timeouts and error replies are retried; final answers
(fencing) are handed over at once; past the deadline the typed answer is
COORDINATOR_NOT_AVAILABLE; ``answer`` is called exactly once."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from rillet.actors.share_state_client import ShareStateClient, local_first
from rillet.transport import protocol as P

pytestmark = pytest.mark.timeout(30)
E = P.ErrorCode
WRITE = P.WriteShareGroupStateRequest(group_id="g", topic="t", partition=3, state_epoch=0,
                                      leader_epoch=1, start_offset=0)


class World:
    def __init__(self, replies, coordinators=(7,), deadline_ms: int = 60_000) -> None:
        self.replies = list(replies)  # per request: a response, or an exception to raise
        self.coordinators = list(coordinators)  # FindCoordinator answers, the last repeats
        self.keys: list[str] = []
        self.sent: list[tuple[str, object]] = []
        self.later: list = []
        self.answers: list = []
        self.client = ShareStateClient(self.find, lambda b: f"broker-{b}:9", self.request,
                                       lambda delay, fn: self.later.append(fn),
                                       deadline_ms=deadline_ms)

    def find(self, key: str) -> P.FindCoordinatorResponse:
        self.keys.append(key)
        node = self.coordinators.pop(0) if len(self.coordinators) > 1 else self.coordinators[0]
        if node is None:
            return P.FindCoordinatorResponse(error_code=E.COORDINATOR_NOT_AVAILABLE)
        return P.FindCoordinatorResponse(node_id=node, host="h", port=1)

    def request(self, address: str, message: object, timeout_ms: int) -> Future:
        self.sent.append((address, message))
        future: Future = Future()
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            future.set_exception(reply)
        else:
            future.set_result(reply)
        return future

    def run_retries(self) -> None:
        while self.later:
            self.later.pop(0)()


def test_a_write_goes_to_the_coordinators_inter_broker_address():
    w = World([P.WriteShareGroupStateResponse(state_epoch=0)])
    w.client.write(WRITE, w.answers.append)
    assert w.keys == ["g:t:3"] and w.sent == [("broker-7:9", WRITE)]
    assert w.answers == [P.WriteShareGroupStateResponse(state_epoch=0)]


def test_moves_loads_timeouts_and_error_replies_are_retried():
    w = World([
        P.ReadShareGroupStateResponse(error_code=E.COORDINATOR_LOAD_IN_PROGRESS),
        TimeoutError("no answer"),
        P.ErrorResponse(error_code=E.INVALID_REQUEST, error_message="not handled"),
        P.ReadShareGroupStateResponse(error_code=E.NOT_COORDINATOR),
        P.ReadShareGroupStateResponse(start_offset=42, state_epoch=1),
    ], coordinators=(None, 7, 7, 7, 7, 8))
    w.client.read("g", "t", 3, 5, w.answers.append)
    w.run_retries()
    assert [a for a, _ in w.sent] == ["broker-7:9"] * 4 + ["broker-8:9"]  # it moved to 8
    assert all(m == P.ReadShareGroupStateRequest(group_id="g", topic="t", partition=3,
                                                 leader_epoch=5) for _, m in w.sent)
    assert w.answers == [P.ReadShareGroupStateResponse(start_offset=42, state_epoch=1)]


@pytest.mark.parametrize("code", [E.FENCED_STATE_EPOCH, E.FENCED_LEADER_EPOCH,
                                  E.INVALID_REQUEST])
def test_final_answers_are_handed_over_at_once(code):
    w = World([P.WriteShareGroupStateResponse(error_code=code, state_epoch=3)])
    w.client.write(WRITE, w.answers.append)
    w.run_retries()
    assert len(w.sent) == 1
    assert w.answers == [P.WriteShareGroupStateResponse(error_code=code, state_epoch=3)]


def test_past_the_deadline_the_answer_is_coordinator_not_available():
    w = World([P.WriteShareGroupStateResponse(error_code=E.NOT_COORDINATOR)], deadline_ms=0)
    w.client.write(WRITE, w.answers.append)
    w.run_retries()
    assert len(w.answers) == 1
    assert isinstance(w.answers[0], P.WriteShareGroupStateResponse)
    assert w.answers[0].error_code == E.COORDINATOR_NOT_AVAILABLE
    w2 = World([], coordinators=(None,), deadline_ms=0)  # never a coordinator
    w2.client.read("g", "t", 3, 1, w2.answers.append)
    w2.run_retries()
    assert [type(a) for a in w2.answers] == [P.ReadShareGroupStateResponse]
    assert w2.answers[0].error_code == E.COORDINATOR_NOT_AVAILABLE and w2.sent == []


class _Timer:
    def __init__(self, fn) -> None:
        self.fn, self.cancelled = fn, False

    def cancel(self) -> None:
        self.cancelled = True


class _LocalCoordinator:
    """A fake actor ref: keeps what it is told."""

    def __init__(self) -> None:
        self.told: list = []

    def tell(self, message) -> None:
        self.told.append(message)


def _local(remote_sent: list, ref):
    timers: list[_Timer] = []

    def remote(address, message, timeout_ms):
        remote_sent.append((address, message))
        return Future()

    def schedule(delay_s, fn):
        timers.append(_Timer(fn))
        return timers[-1]

    return local_first(remote, lambda: "me:9", lambda: ref, schedule), timers


def test_a_request_to_this_brokers_own_coordinator_is_told_to_its_actor():
    sent: list = []
    ref = _LocalCoordinator()
    request, timers = _local(sent, ref)
    future = request("me:9", WRITE, 5000)
    assert sent == [] and [m.request for m in ref.told] == [WRITE]
    ref.told[0].respond(P.WriteShareGroupStateResponse(state_epoch=2))
    assert future.result(0) == P.WriteShareGroupStateResponse(state_epoch=2)
    assert timers[0].cancelled
    timers[0].fn()  # a timer that fires anyway changes nothing
    assert future.result(0) == P.WriteShareGroupStateResponse(state_epoch=2)
    other = request("broker-7:9", WRITE, 5000)  # another broker: over the wire
    assert sent == [("broker-7:9", WRITE)] and not other.done() and len(ref.told) == 1


def test_a_local_request_not_answered_in_time_fails_as_a_remote_one_would():
    ref = _LocalCoordinator()
    request, timers = _local([], ref)
    future = request("me:9", WRITE, 5000)
    timers[0].fn()
    with pytest.raises(TimeoutError):
        future.result(0)
    ref.told[0].respond(P.WriteShareGroupStateResponse(state_epoch=2))  # too late: ignored
    with pytest.raises(TimeoutError):
        future.result(0)
