"""The router's session lifecycle in one process (no sockets): a released session's actor is
stopped and leaves the registry, requests told before the release are still answered,
idle expiry spares sessions with a request in flight, and the config that drives it."""

from __future__ import annotations

import threading
import time

import pykka
import pytest
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.actors.controller import BROKER_IDENTITY_PREFIX
from rillet.actors.router import PeerControlSession, Router
from rillet.actors.session import BrokerContext, ClientSession, Listener
from rillet.actors.ticker import Ticker
from rillet.transport import codec
from rillet.transport import protocol as P

pytestmark = pytest.mark.timeout(30)


class Lease:
    def __init__(self) -> None:
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def router():
    ticker = Ticker()
    sent: list = []
    ctx = BrokerContext(
        broker_id=1,
        host="127.0.0.1",
        port=1,
        cluster_id="c",
        broker_configs={},
        send=lambda peer, frames: sent.append((peer, frames)),
        ticker=ticker,
    )
    r = Router(ctx, max_idle_ms=50)
    try:
        yield r, sent
    finally:
        r.close()
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
        ticker.stop()


def _sessions() -> list:
    return pykka.ActorRegistry.get_by_class(ClientSession)


def _wait(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _request(cid: int) -> list:
    return codec.encode_request(P.ApiVersionsRequest(), cid)


def test_a_disconnected_peer_is_answered_then_released_and_unregistered(router) -> None:
    r, sent = router
    leases = [Lease() for _ in range(20)]
    for cid, lease in enumerate(leases):
        r.handle(b"peer", _request(cid), lease)
    assert r.session_count == 1 and len(_sessions()) == 1
    r.disconnected(b"peer")
    assert r.session_count == 0 and r.released_disconnected == 1
    _wait(lambda: not _sessions())  # the actor stopped and left the registry
    # everything told before the release was handled, in order, and its lease released
    assert [codec.decode_response(frames)[0] for _, frames in sent] == list(range(20))
    assert all(lease.released.is_set() for lease in leases)
    r.disconnected(b"peer")  # reported twice: nothing to do
    assert r.released_disconnected == 1
    r.handle(b"peer", _request(99), Lease())  # the peer's next request: a new session
    assert r.session_count == 1 and r.opened == 2


def test_idle_expiry_spares_a_session_with_a_request_in_flight(router) -> None:
    r, _ = router
    r.handle(b"idle", _request(1), Lease())
    r.handle(b"busy", _request(2), Lease())
    _, busy_state = r._sessions[b"busy"]
    busy_state.track(lambda: None)  # a request in flight (a parked fetch, say), never ended
    for _, state in r._sessions.values():
        state.last_seen -= 1.0  # both last heard of 1 s ago: past max_idle_ms (50)
    r.expire_idle()
    assert set(r._sessions) == {b"busy"}
    assert r.released_idle == 1
    _wait(lambda: len(_sessions()) == 1)


def test_other_brokers_control_connections_get_sessions_on_the_controller_lane(router) -> None:
    r, sent = router
    internal = Router(r.ctx, max_idle_ms=50, listener=Listener("internal", True, r.ctx.send))
    try:
        control, fetcher = b"rillet-broker:2:\x00:\xff\x01abcd", b"rillet-broker:2-fetch:abcdefgh"
        for cid, peer in enumerate((control, fetcher, b"client-1")):
            internal.handle(peer, _request(cid), Lease())
        r.handle(control, _request(3), Lease())  # the client listener: no peer is special
        lanes = {peer: ref.actor_class.lane for peer, (ref, _) in internal._sessions.items()}
        assert lanes == {control: "controller", fetcher: "default", b"client-1": "default"}
        ((ref, _),) = r._sessions.values()
        assert ref.actor_class is ClientSession and ref.actor_class.lane == "default"
        assert internal._sessions[control][0].actor_class is PeerControlSession
        _wait(lambda: len(sent) == 4)  # every one answered, whichever lane
        assert sorted(codec.decode_response(frames)[0] for _, frames in sent) == [0, 1, 2, 3]
    finally:
        internal.close()


@pytest.mark.parametrize("value", ["0", "-2"])
def test_connections_max_idle_ms_must_be_positive_or_minus_one(value) -> None:
    with pytest.raises(ConfigError, match="connections.max.idle.ms"):
        validate_broker_configs({"connections.max.idle.ms": value})
    assert validate_broker_configs({"connections.max.idle.ms": "-1"})["connections.max.idle.ms"]


def test_an_idle_sessions_request_is_handled_on_the_endpoint_thread(router) -> None:
    """Hosted turns (docs/runtime.md, "Hosted sessions"): the router runs an idle session's
    request on the thread that read it (the endpoint's I/O thread), so the answer is queued
    without a hand-off to the default lane; a session busy on the lane gets it in its mailbox."""
    r, _ = router
    threads: list[str] = []
    r.ctx.send = lambda peer, frames: threads.append(threading.current_thread().name)
    r.listener = Listener("client", False, r.ctx.send)
    r.handle(b"peer", _request(0), Lease())  # a new session: its first turn (on_start) is the pool's
    _wait(lambda: len(threads) == 1)
    session = r.session_states()[0][0]
    _wait(lambda: session.actor_inbox.empty() and not session.actor_inbox._scheduled)
    for cid in range(1, 4):
        r.handle(b"peer", _request(cid), Lease())
    me = threading.current_thread().name
    assert threads[1:] == [me, me, me]  # answered before handle() returned, on this thread
    assert threads[0] != me


def test_no_session_of_the_inter_broker_listener_is_hosted(router) -> None:
    """Its I/O thread also reads Raft and heartbeats: a control session stays on the
    controller lane and a follower's fetch session on the default lane."""
    r, _ = router
    threads: dict[bytes, list[str]] = {}
    internal = Router(r.ctx, max_idle_ms=50, listener=Listener(
        "internal", True,
        lambda peer, frames: threads.setdefault(peer, []).append(
            threading.current_thread().name)))
    try:
        control, fetcher = BROKER_IDENTITY_PREFIX + b"2:x", BROKER_IDENTITY_PREFIX + b"2-fetch:y"
        for peer in (control, fetcher):
            internal.handle(peer, _request(0), Lease())
            _wait(lambda peer=peer: len(threads.get(peer, ())) == 1)
            (ref, _) = internal._sessions[peer]
            _wait(lambda ref=ref: ref.actor_inbox.empty() and not ref.actor_inbox._scheduled)
            for cid in (1, 2):  # idle now: still handed to its lane
                internal.handle(peer, _request(cid), Lease())
        _wait(lambda: all(len(threads.get(p, ())) == 3 for p in (control, fetcher)))
        assert all(name.startswith("rillet-controller") for name in threads[control])
        assert all(name.startswith("rillet-default") for name in threads[fetcher])
    finally:
        internal.close()


def test_a_consumers_tail_read_is_answered_on_the_endpoint_thread_an_old_segment_on_the_io_lane(
    router, tmp_path
) -> None:
    """A consumer's Fetch on a hosted session reads its partitions inline (issue #12: each
    fetch was a hand-off to the io lane, and a produce that found the replica busy with it
    waited for that lane too): a read of the active segment is answered on the thread that
    read the request; a read of an older segment, which may wait for the disk, is re-told to
    the replica's io lane and answered from there, with the same records."""
    from rillet.actors import partition as R
    from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
    from rillet.logstore.batch import BatchBuilder, iter_batches
    from rillet.logstore.config import LogConfig

    r, _ = router
    answers: list[tuple[str, object]] = []
    r.ctx.send = lambda peer, frames: answers.append(
        (threading.current_thread().name, codec.decode_response(frames)[1]))
    r.listener = Listener("client", False, r.ctx.send)
    info = PartitionInfo(0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)
    r.ctx.image = MetadataImage(topics={"t": TopicInfo(name="t", topic_id="i", partitions={0: info})})
    ref = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(segment_bytes=300), 0, 1, "i", info=info)
    r.ctx.replicas[("t", 0)] = ref
    for n in range(4):  # ~170-byte batches in 300-byte segments: one segment each
        b = BatchBuilder()
        b.append(int(time.time() * 1000), None, b"%d" % n * 100)
        done = threading.Event()
        ref.tell(R.Append(b.build(), lambda _r, done=done: done.set()))
        assert done.wait(5)
    bases = sorted(int(p.stem) for p in (tmp_path / "t-0").glob("*.log"))
    assert len(bases) == 4 and bases[-1] == 3

    def fetch(cid: int, offset: int) -> tuple[str, P.FetchPartitionResponse]:
        _wait(lambda: ref.actor_inbox.empty() and not ref.actor_inbox._scheduled)
        for state in r._sessions.values():
            _wait(lambda s=state[0]: s.actor_inbox.empty() and not s.actor_inbox._scheduled)
        before = len(answers)
        r.handle(b"consumer", codec.encode_request(P.FetchRequest(
            max_wait_ms=0, topics=(P.FetchTopic(name="t", partitions=(
                P.FetchPartition(partition=0, fetch_offset=offset),)),)), cid),
            Lease())
        _wait(lambda: len(answers) > before)
        thread, response = answers[before]
        return thread, response.topics[0].partitions[0]

    fetch(0, 3)  # a new session: its first turn (on_start) is the pool's
    me = threading.current_thread().name
    thread, tail = fetch(1, 3)
    assert thread == me and tail.high_watermark == 4
    assert [h.base_offset for h, _ in iter_batches(tail.records)] == [3]
    thread, old = fetch(2, 0)
    assert thread.startswith("rillet-io-")
    assert [h.base_offset for h, _ in iter_batches(old.records)] == [0]
