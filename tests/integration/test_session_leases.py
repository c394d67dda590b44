"""ClientSession in one process (no sockets): every request's lease on its bytes
(queued.max.request.bytes) is released exactly once, when the request is finished with: the
response handed to the endpoint, or, for acks=0 produce, every partition done."""

from __future__ import annotations

import threading
import time

import pykka
import pytest
from cluster_helpers import batch
from rillet.actors import partition as R
from rillet.actors.session import BrokerContext, ClientSession, Inbound
from rillet.actors.ticker import Ticker
from rillet.coordinator.metadata import MetadataImage, PartitionInfo, TopicInfo
from rillet.logstore.config import LogConfig
from rillet.transport import codec
from rillet.transport import protocol as P

pytestmark = pytest.mark.timeout(30)


class CountingLease:
    def __init__(self) -> None:
        self.releases = 0
        self.lock = threading.Lock()

    def release(self) -> None:
        with self.lock:
            self.releases += 1


@pytest.fixture
def session(tmp_path):
    ticker = Ticker()
    sent: list = []
    ctx = BrokerContext(
        broker_id=1,
        host="127.0.0.1",
        port=1,
        cluster_id="c",
        broker_configs={},
        send=lambda peer, frames: sent.append(frames),
        ticker=ticker,
    )
    info = PartitionInfo(partition=0, replicas=(1,), isr=(1,), leader=1, leader_epoch=0)
    ctx.image = MetadataImage(topics={"t": TopicInfo("t", "id", {0: info})})
    ctx.replicas[("t", 0)] = R.PartitionReplica.start(
        "t", 0, tmp_path / "t-0", LogConfig(), 0, 1, "id"
    )
    ref = ClientSession.start(ctx, b"peer")
    try:
        yield ref, sent
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=5)
        ticker.stop()


def _produce(topic: str, acks: int) -> list:
    part = P.ProducePartition(partition=0, records=batch([b"v"]))
    request = P.ProduceRequest(acks=acks, topics=(P.ProduceTopic(name=topic, partitions=(part,)),))
    return codec.encode_request(request, 7)


def _released_once(lease: CountingLease, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while lease.releases == 0:
        assert time.monotonic() < deadline, "lease never released"
        time.sleep(0.01)
    assert lease.releases == 1


@pytest.mark.parametrize(
    ("frames", "answered"),
    [
        pytest.param(_produce("t", 1), True, id="produce-acks-1"),
        pytest.param(_produce("t", -1), True, id="produce-acks-all"),
        pytest.param(_produce("t", 0), False, id="produce-acks-0"),
        pytest.param(_produce("nope", 0), False, id="produce-acks-0-unknown-topic"),
        pytest.param(codec.encode_request(P.ApiVersionsRequest(), 3), True, id="api-versions"),
        pytest.param(codec.encode_request(P.MetadataRequest(), 4), True, id="metadata"),
        pytest.param([b"\xff\xfe garbage"], True, id="undecodable"),
        pytest.param(
            codec.encode_request(P.RaftRequest(message=b"x"), 6),
            True,
            id="inter-broker-refused-on-the-client-listener",
        ),
    ],
)
def test_each_request_releases_its_lease_once(session, frames, answered) -> None:
    ref, sent = session
    lease = CountingLease()
    ref.tell(Inbound(frames, lease))
    _released_once(lease)
    assert bool(sent) == answered  # released with its response, or with none due (acks=0)


def test_a_request_without_a_lease_is_still_served(session) -> None:
    ref, sent = session
    ref.tell(codec.encode_request(P.ApiVersionsRequest(), 5))  # plain frames, as before
    deadline = time.monotonic() + 5
    while not sent:
        assert time.monotonic() < deadline
        time.sleep(0.01)
