"""Bad input from the network: error replies, and the broker stays healthy."""

from __future__ import annotations

import time

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rillet.logstore.batch import BatchBuilder
from rillet.transport import codec
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import ProtocolError, RequestTimedOutError


def batch(values) -> bytes:
    b = BatchBuilder()
    for v in values:
        b.append(int(time.time() * 1000), None, v)
    return b.build()


pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
E = P.ErrorCode


@pytest.fixture
def cluster(shared_cluster):
    """One broker for the tests that take ``wire``: bad input must leave it healthy for the
    next test, too (``test_oversized_frames`` starts its own, differently configured)."""
    return shared_cluster


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=8) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
    max_leaves=12,
)
garbage = st.one_of(
    st.lists(st.binary(max_size=200), min_size=1, max_size=3),
    st.builds(
        lambda api, body, extra: [
            cbor2.dumps({"api": api, "v": 0, "cid": 5, "body": body}),
            *extra,
        ],
        st.sampled_from(sorted(P.REQUESTS)) | st.text(max_size=6),
        cbor_values,
        st.lists(st.binary(max_size=30), max_size=2),
    ),
)


def _well_formed(frames) -> bool:
    try:
        codec.decode_request(frames)
    except ProtocolError:
        return False
    return True


def _healthy(wire) -> None:
    assert wire.call(P.ApiVersionsRequest(), 5000).broker_id == 1
    part = wire.produce("health", 0, batch([b"still here"]))
    assert part.error_code == E.NONE


@pytest.mark.timeout(120)
def test_garbage_frames_get_error_replies(wire) -> None:
    wire.create_topic("health")
    replies = []

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(frames=garbage)
    def send(frames) -> None:
        reply = wire.endpoint.request_raw(wire.address, frames, 5000).result(10)
        replies.append(reply)
        if _well_formed(frames) and not isinstance(reply, P.ErrorResponse):
            return  # the generator hit a valid request (ApiVersions, empty body): answered
        assert isinstance(reply, P.ErrorResponse), reply
        assert reply.error_code in (
            E.INVALID_REQUEST,
            E.UNSUPPORTED_VERSION,
            E.MESSAGE_TOO_LARGE,
            E.CLUSTER_AUTHORIZATION_FAILED,  # well-formed inter-broker API on a client port
        )

    send()
    assert replies
    _healthy(wire)


def test_well_formed_requests_keep_working_between_bad_ones(wire) -> None:
    wire.create_topic("health")
    header = cbor2.dumps({"api": "Fetch", "v": 7, "cid": 99, "body": {}})
    reply = wire.endpoint.request_raw(wire.address, [header], 5000).result(10)
    assert reply.error_code == E.UNSUPPORTED_VERSION and "Fetch version 7" in reply.error_message
    frames = codec.encode_request(P.MetadataRequest(), -7)
    reply = wire.endpoint.request_raw(wire.address, [frames[0] + b"\x00"], 5000).result(10)
    assert reply.error_code == E.INVALID_REQUEST and "trailing" in reply.error_message
    _healthy(wire)


def test_oversized_frames(cluster_factory, wire_factory) -> None:
    cluster = cluster_factory(configs={"socket.request.max.bytes": str(2 << 20)})
    wire = wire_factory(cluster)
    wire.create_topic("health")
    # Above message.max.bytes but within the socket cap: a per-partition error reply.
    too_big = wire.produce("health", 0, batch([b"x" * (1200 << 10)]))
    assert too_big.error_code == E.MESSAGE_TOO_LARGE
    # Above the socket cap (MAXMSGSIZE): ZeroMQ drops that connection; nothing is answered.
    raw = ClientEndpoint()
    try:
        with pytest.raises(RequestTimedOutError):
            raw.request(
                wire.address,
                P.ProduceRequest(
                    acks=1,
                    topics=(
                        P.ProduceTopic(
                            name="health",
                            partitions=(
                                P.ProducePartition(partition=0, records=b"\x00" * (3 << 20)),
                            ),
                        ),
                    ),
                ),
                1000,
            ).result(10)
    finally:
        raw.close()
    _healthy(wire)
    assert [r.value for r in wire.fetch_all("health", 0)] == [b"still here"]
