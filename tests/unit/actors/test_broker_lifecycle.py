"""The BrokerLifecycle actor: where its heartbeats go and how often (no sockets; a fake
endpoint and a fake local controller record what it sends)."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pykka
import pytest
from rillet.actors import controller as C
from rillet.actors.broker_lifecycle import BrokerLifecycle, Identity, Progress
from rillet.actors.runtime import DispatchedActor
from rillet.actors.ticker import Ticker
from rillet.coordinator import metadata as md
from rillet.transport import protocol as P

from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)
ME = Identity(2, "127.0.0.1", 9002, "127.0.0.1", 9102, "inc-2", False)


class Endpoint:
    """Answers every heartbeat with ``answer`` and records (address, request)."""

    def __init__(self, answer: P.BrokerHeartbeatResponse) -> None:
        self.answer = answer
        self.sent: list[tuple[str, P.BrokerHeartbeatRequest]] = []
        self.lock = threading.Lock()

    def request(self, address, request, timeout_ms) -> Future:
        with self.lock:
            self.sent.append((address, request))
        f: Future = Future()
        f.set_result(self.answer)
        return f


class LocalController(DispatchedActor):
    def __init__(self, answer: P.BrokerHeartbeatResponse) -> None:
        super().__init__()
        self.answer = answer
        self.beats: list[P.BrokerHeartbeatRequest] = []

    def on_receive(self, message):
        if isinstance(message, C.Heartbeat):
            self.beats.append(message.request)
            message.reply(self.answer)


@pytest.fixture
def ticker():
    t = Ticker()
    yield t
    t.stop()
    pykka.ActorRegistry.stop_all(block=True, timeout=5)


def _start(ticker, endpoint, controller, voters, heartbeat_ms=60_000, hints=None):
    return BrokerLifecycle.start(
        ME,
        voters=voters,
        heartbeat_ms=heartbeat_ms,
        endpoint=endpoint,
        controller=controller,
        schedule=ticker.call_later,
        on_controller_hint=(hints.append if hints is not None else lambda _c: None),
    )


def _image_with(broker_id: int, internal_port: int) -> md.MetadataImage:
    return md.replay(
        md.register_broker(
            md.MetadataImage(),
            broker_id,
            "127.0.0.1",
            9000 + broker_id,
            internal_host="127.0.0.1",
            internal_port=internal_port,
        )
    )


def test_a_new_controller_hears_at_once_and_a_fenced_broker_beats_fast(ticker) -> None:
    fenced = P.BrokerHeartbeatResponse(controller_id=1, is_fenced=True)
    endpoint = Endpoint(fenced)
    ref = _start(ticker, endpoint, None, {1: "127.0.0.1:9101", 2: "127.0.0.1:9102"})
    assert endpoint.sent == []  # a voter waits for the quorum to name a controller
    # the controller's registered inter-broker address wins over the voters' list
    ref.tell(Progress(1, 7, _image_with(1, 9911)))
    first = wait_until(lambda: list(endpoint.sent), 5, "a heartbeat to the new controller")
    address, req = first[0]
    assert address == "127.0.0.1:9911"
    assert (req.broker_id, req.metadata_offset, req.incarnation, req.clean_shutdown) == (
        2,
        7,
        "inc-2",
        False,
    )
    # fenced: beats every 100 ms although the interval is a minute
    wait_until(lambda: len(endpoint.sent) >= 4, 5, "fast beats while fenced")
    endpoint.answer = P.BrokerHeartbeatResponse(controller_id=1, is_fenced=False)
    wait_until(lambda: len(endpoint.sent) >= 5, 5, "the unfenced answer")
    settled = len(endpoint.sent)
    ref.tell(Progress(1, 8, _image_with(1, 9911)))  # progress alone does not beat
    ref.ask(Progress(1, 8, _image_with(1, 9911)))
    assert len(endpoint.sent) <= settled + 1  # at most the beat that was in flight


def test_the_active_controller_gets_its_own_beat_as_a_message(ticker) -> None:
    local = LocalController.start(P.BrokerHeartbeatResponse(controller_id=2))
    endpoint = Endpoint(P.BrokerHeartbeatResponse(controller_id=2))
    ref = _start(ticker, endpoint, local, {2: "127.0.0.1:9102"})
    ref.tell(Progress(2, 3, md.MetadataImage()))
    wait_until(lambda: local.proxy().beats.get(), 5, "a beat to the local controller")
    assert endpoint.sent == []


def test_an_observer_asks_the_voters_in_turn_and_passes_on_hints(ticker) -> None:
    hints: list[int] = []
    endpoint = Endpoint(
        P.BrokerHeartbeatResponse(error_code=P.ErrorCode.NOT_CONTROLLER, controller_id=3)
    )
    _start(ticker, endpoint, None, {1: "h:1", 3: "h:3"}, heartbeat_ms=20, hints=hints)
    wait_until(lambda: len(endpoint.sent) >= 2, 5, "two beats")
    assert [a for a, _ in endpoint.sent[:2]] == ["h:1", "h:3"]
    wait_until(lambda: hints, 5, "the controller hint")
    assert hints[0] == 3


def test_a_beat_that_fails_to_leave_does_not_stop_the_heartbeats(ticker) -> None:
    class Failing(Endpoint):
        def request(self, address, request, timeout_ms):
            with self.lock:
                self.sent.append((address, request))
            if len(self.sent) == 1:
                raise RuntimeError("endpoint closed under us")
            return super().request(address, request, timeout_ms)

    endpoint = Failing(P.BrokerHeartbeatResponse(controller_id=1))
    ref = _start(ticker, endpoint, None, {1: "h:1", 2: "h:2"}, heartbeat_ms=20)
    ref.tell(Progress(1, 0, md.MetadataImage()))
    wait_until(lambda: len(endpoint.sent) >= 3, 5, "beats after the failed one")
