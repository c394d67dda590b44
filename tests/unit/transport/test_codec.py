"""The envelope codec: round trips, and strict rejection of everything malformed."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.transport import codec
from rillet.transport import protocol as P
from rillet.transport.errors import ProtocolError

from .acl_samples import ACL_SAMPLES
from .feature_samples import FEATURE_SAMPLES
from .group_samples import GROUP_SAMPLES
from .ops_samples import OPS_SAMPLES
from .quota_samples import QUOTA_SAMPLES
from .replication_samples import REPLICATION_SAMPLES
from .share_samples import SHARE_SAMPLES
from .txn_samples import TXN_SAMPLES

SAMPLES = [
    P.ApiVersionsRequest(),
    P.ApiVersionsResponse(
        api_versions=(P.ApiVersion(api="Fetch", min_version=0, max_version=0),), broker_id=3
    ),
    P.BrokerStatsRequest(),
    P.BrokerStatsResponse(broker_id=1, connection_count=1000, threads=25),
    P.MetadataRequest(topics=("a", "b")),
    P.MetadataRequest(),
    P.MetadataResponse(
        brokers=(P.BrokerMetadata(broker_id=1, host="127.0.0.1", port=9092),),
        topics=(
            P.TopicMetadata(
                name="t",
                partitions=(P.PartitionMetadata(partition=0, leader=1, replicas=(1,), isr=(1,)),
                            P.PartitionMetadata(partition=1, leader=-1, replicas=(2,), isr=(2,),
                                                damaged_replicas=(2,),
                                                offline_reason="offline: damaged")),
            ),
        ),
    ),
    P.CreateTopicsRequest(
        topics=(P.CreatableTopic(name="t", num_partitions=3, configs={"retention.ms": "10"}),)
    ),
    P.CreateTopicsResponse(topics=(P.CreatableTopicResult(name="t", error_message="x"),)),
    P.DeleteTopicsRequest(topic_names=("t",)),
    P.DeleteTopicsResponse(results=(P.TopicResult(name="t", error_code=3),)),
    P.CreatePartitionsRequest(topics=(P.CreatePartitionsTopic(name="t", count=4),)),
    P.CreatePartitionsResponse(results=(P.TopicResult(name="t"),)),
    P.DescribeConfigsRequest(resources=(P.ConfigResource(resource_type=2, resource_name="t"),)),
    P.DescribeConfigsResponse(
        results=(
            P.DescribeConfigsResult(
                resource_type=2,
                resource_name="t",
                configs=(P.ConfigEntry(name="cleanup.policy", value="delete", is_default=True),),
            ),
        )
    ),
    P.AlterConfigsRequest(
        resources=(
            P.AlterConfigsResource(
                resource_type=2,
                resource_name="t",
                configs=(P.AlterableConfig(name="retention.ms", value=None, op=1),),
            ),
        )
    ),
    P.AlterConfigsResponse(results=(P.AlterConfigsResult(resource_type=2, resource_name="t"),)),
    P.ProduceRequest(
        acks=1,
        topics=(
            P.ProduceTopic(
                name="t",
                partitions=(
                    P.ProducePartition(partition=0, records=b"\x00batch-one"),
                    P.ProducePartition(partition=1, records=b""),
                    P.ProducePartition(partition=2, records=b"\x01batch-two"),
                ),
            ),
        ),
    ),
    P.ProduceResponse(
        topics=(
            P.ProduceTopicResponse(
                name="t", partitions=(P.ProducePartitionResponse(partition=0, base_offset=5),)
            ),
        )
    ),
    P.FetchRequest(
        max_wait_ms=100,
        topics=(
            P.FetchTopic(name="t", partitions=(P.FetchPartition(partition=0, fetch_offset=7),)),
        ),
    ),
    P.FetchResponse(
        topics=(
            P.FetchTopicResponse(
                name="t",
                partitions=(
                    P.FetchPartitionResponse(partition=0, high_watermark=9, records=b"raw" * 100),
                ),
            ),
        )
    ),
    P.ListOffsetsRequest(
        topics=(
            P.ListOffsetsTopic(
                name="t", partitions=(P.ListOffsetsPartition(partition=0, timestamp=-2),)
            ),
        )
    ),
    P.ListOffsetsResponse(
        topics=(
            P.ListOffsetsTopicResponse(
                name="t", partitions=(P.ListOffsetsPartitionResponse(partition=0, offset=3),)
            ),
        )
    ),
    P.ErrorResponse(error_code=42, error_message="bad"),
    *GROUP_SAMPLES,
    *REPLICATION_SAMPLES,
    *TXN_SAMPLES,
    *SHARE_SAMPLES,
    *OPS_SAMPLES,
    *ACL_SAMPLES,
    *QUOTA_SAMPLES,
    *FEATURE_SAMPLES,
    P.RaftRequest(message=b"\xa0"),
    P.RaftResponse(),
    P.BrokerHeartbeatRequest(broker_id=2, host="127.0.0.1", port=9093, metadata_offset=7),
    P.BrokerHeartbeatResponse(controller_id=1, is_fenced=False),
    P.MetadataFetchRequest(start_index=3),
    P.MetadataFetchResponse(snapshot=b"img", snapshot_index=2, first_index=3, entries=(b"", b"x")),
    P.BrokerCountersRequest(),
    P.BrokerCountersResponse(
        broker_id=2, counters=(P.BrokerCounter(name="replica_fetch_polls", value=7),)
    ),
    P.FetchRequest(  # a follower's incremental fetch session (KIP-227)
        replica_id=2,
        session_id=12345,
        session_epoch=4,
        topics=(),
        forgotten_topics=(P.FetchForgottenTopic(name="t", partitions=(0, 3)),),
    ),
    P.FetchResponse(session_id=12345),
]

PRODUCE = next(m for m in SAMPLES if type(m) is P.ProduceRequest)


def _roundtrip(msg):
    if msg.API in P.REQUESTS and type(msg) is P.REQUESTS[msg.API]:
        return codec.decode_request(codec.encode_request(msg, 11))
    return codec.decode_response(codec.encode_response(msg, 11))


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg) -> None:
    assert _roundtrip(msg) == (11, msg)


def test_every_api_has_a_request_and_response_sample() -> None:
    covered = {type(m) for m in SAMPLES}
    assert set(P.REQUESTS.values()) <= covered
    assert set(P.RESPONSES.values()) <= covered


def test_batches_ride_as_raw_frames_in_order() -> None:
    frames = codec.encode_request(PRODUCE, 1)
    assert frames[1:] == [b"\x00batch-one", b"\x01batch-two"]
    header = cbor2.loads(frames[0])
    parts = header["body"]["topics"][0]["partitions"]
    assert [p["records"] for p in parts] == [1, None, 2]


def _header(body, api="Metadata", v=0, cid=1):
    return cbor2.dumps({"api": api, "v": v, "cid": cid, "body": body})


def _err(frames, code=P.ErrorCode.INVALID_REQUEST):
    with pytest.raises(ProtocolError) as info:
        codec.decode_request(frames)
    assert info.value.code == code
    return info.value


def test_unknown_api_and_version() -> None:
    assert "unknown api" in str(_err([_header({}, api="Nope")]))
    e = _err(
        [_header({"topics": None, "allow_auto_topic_creation": False}, v=9)],
        P.ErrorCode.UNSUPPORTED_VERSION,
    )
    assert e.correlation_id == 1


def test_exact_keys_and_types() -> None:
    good = {"topics": None, "allow_auto_topic_creation": False}
    assert codec.decode_request([_header(good)])[1] == P.MetadataRequest()
    _err([_header({**good, "extra": 1})])
    _err([_header({"topics": None})])
    _err([_header({**good, "allow_auto_topic_creation": 0})])  # int is not a bool
    _err([_header({**good, "topics": ["a", 1]})])
    e = _err([_header({"topics": None, "allow_auto_topic_creation": "yes"}, cid=77)])
    assert e.correlation_id == 77 and "allow_auto_topic_creation" in e.message


def test_bool_is_not_an_int_and_int64_bounds() -> None:
    body = {"topic_names": ["t"], "timeout_ms": True}
    _err([_header(body, api="DeleteTopics")])
    _err([_header({"topic_names": ["t"], "timeout_ms": 1 << 64}, api="DeleteTopics")])


def test_trailing_bytes_tags_and_indefinite_lengths_rejected() -> None:
    good = _header({"topics": None, "allow_auto_topic_creation": False})
    assert "trailing" in str(_err([good + b"\x00"]))
    tagged = cbor2.dumps(
        {"api": "Metadata", "v": 0, "cid": cbor2.CBORTag(2, b"\x01" * 4), "body": {}}
    )
    _err([tagged])
    _err([bytes.fromhex("bf63617069ff")])  # indefinite-length map
    dup = bytes.fromhex("a2616101616102")  # {"a": 1, "a": 2}
    _err([dup])


def test_frames_must_be_referenced_exactly_once() -> None:
    frames = codec.encode_request(PRODUCE, 1)
    _err([*frames, b"extra"])
    _err(frames[:2])


def test_size_caps() -> None:
    _err([b"\xa0" * (codec.MAX_HEADER_BYTES + 1)], P.ErrorCode.MESSAGE_TOO_LARGE)
    frames = codec.encode_request(PRODUCE, 1)
    with pytest.raises(ProtocolError) as info:
        codec.decode_request(frames, max_frame_bytes=4)
    assert info.value.code == P.ErrorCode.MESSAGE_TOO_LARGE


def test_retriable_classification() -> None:
    assert P.retriable(P.ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert not P.retriable(P.ErrorCode.INVALID_CONFIG)
    assert not P.retriable(P.ErrorCode.NONE)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(st.binary(max_size=300), max_size=4))
def test_random_frames_only_raise_protocol_error(frames) -> None:
    try:
        codec.decode_request(frames)
    except ProtocolError:
        pass
    try:
        codec.decode_response(frames)
    except ProtocolError:
        pass


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.binary(max_size=8)
    | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    api=st.sampled_from(sorted(P.REQUESTS)) | st.text(max_size=5),
    body=cbor_values,
    cid=st.integers(),
    extra=st.lists(st.binary(max_size=20), max_size=2),
)
def test_wellformed_cbor_wrong_shapes_only_raise_protocol_error(api, body, cid, extra) -> None:
    header = cbor2.dumps({"api": api, "v": 0, "cid": cid, "body": body})
    try:
        codec.decode_request([header, *extra])
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_mutated_valid_requests_only_raise_protocol_error(data) -> None:
    msg = data.draw(
        st.sampled_from(
            [m for m in SAMPLES if m.API in P.REQUESTS and type(m) is P.REQUESTS[m.API]]
        )
    )
    frames = codec.encode_request(msg, 5)
    header = bytearray(frames[0])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(header) - 1))
        header[i] = data.draw(st.integers(0, 255))
    try:
        codec.decode_request([bytes(header), *frames[1:]])
    except ProtocolError:
        pass
