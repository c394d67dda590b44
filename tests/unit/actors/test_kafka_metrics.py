"""The KAFKA listener's metrics hooks (actors/kafka_metrics.py) without a broker: error codes
found in kio responses at every depth, latency and errors per API, the families exported
with a ``listener`` label beside the native listener's, Kafka fetches' bytes out, the parked
fetch count, and a real KafkaListener on loopback counting its requests, connections and
socket bytes (a fake broker context holding a BrokerMetrics)."""

from __future__ import annotations

import io
import socket
import struct
import time
from types import SimpleNamespace

from kio.index import load_response_schema
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v2.header import RequestHeader
from kio.serial import entity_writer
from rillet.actors import kafka_metrics as K
from rillet.actors.kafka_listener import KafkaListener
from rillet.actors.kafka_metadata import build
from rillet.actors.metrics import BrokerCollector, BrokerMetrics
from rillet.actors.session import SessionState
from rillet.coordinator.metadata import MetadataImage
from rillet.logstore.batch import BatchBuilder
from rillet.transport import protocol as P


def _produce_response(codes: list[ErrorCode]):
    cls = load_response_schema(0, 9)
    mod = __import__(cls.__module__, fromlist=["PartitionProduceResponse"])
    parts = tuple(
        build(mod.PartitionProduceResponse, index=i, error_code=c, base_offset=-1,
              log_append_time=None, log_start_offset=-1, record_errors=(), error_message=None)
        for i, c in enumerate(codes))
    return build(cls, throttle_time=0, responses=(
        build(mod.TopicProduceResponse, name="t", partition_responses=parts),))


def test_error_codes_are_found_at_every_depth_of_a_kio_response():
    out: list[int] = []
    K.error_codes(_produce_response([ErrorCode.none, ErrorCode.not_leader_or_follower,
                                     ErrorCode.corrupt_message]), out)
    assert out == [6, 2]
    fetch = load_response_schema(1, 12)
    out = []
    K.error_codes(build(fetch, throttle_time=0, error_code=ErrorCode.fetch_session_id_not_found,
                        session_id=0, responses=()), out)
    assert out == [70]  # the top level


def test_the_scan_walks_only_fields_that_can_hold_an_error_code():
    fetch = load_response_schema(1, 12)
    mod = __import__(fetch.__module__, fromlist=["PartitionData"])
    # records, aborted transactions, current leader, diverging epoch: never walked
    assert K._plan(mod.PartitionData) == (("error_code",), (), ())
    assert K._plan(fetch) == (("error_code",), ("responses",), ())
    groups = load_response_schema(15, 5)  # DescribeGroups: a code per group
    gmod = __import__(groups.__module__, fromlist=["DescribedGroup"])
    described = build(gmod.DescribedGroup, error_code=ErrorCode.group_authorization_failed,
                      group_id="g", group_state="", protocol_type="", protocol_data="",
                      members=(), authorized_operations=0)
    out: list[int] = []
    K.error_codes(build(groups, throttle_time=0, groups=(described, described)), out)
    assert out == [30, 30]


def test_requests_latency_and_errors_are_exported_per_api_with_the_listener_label():
    metrics = BrokerMetrics()
    broker = SimpleNamespace(metrics=metrics)
    kafka = K.register(broker)
    assert K.of(broker) is kafka and metrics.listeners == {"KAFKA": kafka}
    kafka.responded("Produce", _produce_response([ErrorCode.not_leader_or_follower]), 0.003)
    kafka.responded("Produce", None, 20.0)  # acks=0: no answer, past the last bucket
    metrics._observe("Produce", 0.0001)  # a native request (listener CLIENT)
    ctx = SimpleNamespace(broker_id=1, image=MetadataImage(), controller_id=1,
                          broker_configs={}, describe_stats=None, counter_values=dict)
    got = {}
    for family in BrokerCollector(ctx, metrics).collect():
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def v(name, **labels):
        return got.get((name, tuple(sorted(labels.items()))))

    assert v("rillet_request_latency_seconds_count", api="Produce", listener="KAFKA") == 2
    assert v("rillet_request_latency_seconds_bucket", api="Produce", listener="KAFKA",
             le="0.0025") == 0
    assert v("rillet_request_latency_seconds_bucket", api="Produce", listener="KAFKA",
             le="0.005") == 1
    assert v("rillet_request_latency_seconds_bucket", api="Produce", listener="KAFKA",
             le="10.0") == 1
    assert v("rillet_request_latency_seconds_bucket", api="Produce", listener="KAFKA",
             le="+Inf") == 2
    assert abs(v("rillet_request_latency_seconds_sum", api="Produce", listener="KAFKA")
               - 20.003) < 1e-9
    assert v("rillet_request_latency_seconds_count", api="Produce", listener="CLIENT") == 1
    assert v("rillet_request_errors_total", api="Produce", listener="KAFKA",
             error="NOT_LEADER_OR_FOLLOWER") == 1
    assert v("rillet_request_errors_total", api="Produce", listener="CLIENT",
             error="NOT_LEADER_OR_FOLLOWER") is None
    assert v("rillet_connection_count", listener="KAFKA") == 0


def test_metrics_off_registers_nothing():
    assert K.register(SimpleNamespace(metrics=None)) is None
    assert K.register(None) is None
    assert K.of(None) is None
    K.fetched(None, P.FetchResponse())  # a no-op, no error


def test_a_kafka_fetch_counts_bytes_and_records_out_per_topic():
    metrics = BrokerMetrics()
    b = BatchBuilder()
    for i in range(3):
        b.append(1000 + i, None, b"v%d" % i)
    data = b.build()
    K.fetched(SimpleNamespace(metrics=metrics), P.FetchResponse(topics=(
        P.FetchTopicResponse(name="t", partitions=(
            P.FetchPartitionResponse(partition=0, records=data + data),
            P.FetchPartitionResponse(partition=1, error_code=P.ErrorCode.NOT_LEADER_OR_FOLLOWER),
        )),)))
    snap = metrics.snapshot()
    assert snap["bytes_out"] == {"t": 2 * len(data)}
    assert snap["messages_out"] == {"t": 6}
    assert snap["errors"] == {}  # the KAFKA listener counts its errors itself


def test_parked_kafka_fetches_join_the_fetch_purgatory():
    metrics = BrokerMetrics()
    metrics.sources.parked_fetches = lambda: 2  # the native sessions' (metrics_sources.wire)
    kafka = K.register(SimpleNamespace(metrics=metrics))
    state, quick = SessionState(), SessionState()
    state.parked.add("a gather")
    kafka.parking(state)
    kafka.parking(quick)  # answered at once: never parked
    assert metrics.sources.parked_fetches() == 3
    kafka.unparked(state)
    assert metrics.sources.parked_fetches() == 2


def _api_versions_frame(cid: int) -> bytes:
    buf = io.BytesIO()
    entity_writer(RequestHeader)(buf, RequestHeader(
        request_api_key=18, request_api_version=3, correlation_id=cid, client_id="c"))
    entity_writer(ApiVersionsRequest)(
        buf, ApiVersionsRequest(client_software_name="n", client_software_version="v"))
    body = buf.getvalue()
    return struct.pack(">i", len(body)) + body


def _recv_response(sock: socket.socket) -> bytes:
    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    size = struct.unpack(">i", head)[0]
    body = b""
    while len(body) < size:
        body += sock.recv(size - len(body))
    return head + body


def _until(check, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_real_listener_counts_requests_connections_and_socket_bytes():
    metrics = BrokerMetrics()
    listener = KafkaListener("127.0.0.1", 0, SimpleNamespace(metrics=metrics)).start()
    kafka = metrics.listeners["KAFKA"]
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
            sent = received = 0
            for cid in (1, 2):
                frame = _api_versions_frame(cid)
                s.sendall(frame)
                sent += len(frame)
                received += len(_recv_response(s))
            assert kafka.requests == {"ApiVersions": 2}
            assert sum(kafka.latency_buckets["ApiVersions"]) == 2
            assert kafka.errors == {}
            assert kafka.connection_count == 1 and kafka.connection_creation == 1
            _until(lambda: kafka.incoming_bytes == sent, "bytes in")
            # counted by the loop thread once send() returns: maybe after the client read it
            _until(lambda: kafka.outgoing_bytes == received, "bytes out")
            # a version above the served ones: answered UNSUPPORTED_VERSION (35) by the loop
            s.sendall(struct.pack(">ihhi", 8, 18, 99, 3))
            _recv_response(s)
            assert kafka.requests == {"ApiVersions": 3}
            assert kafka.errors == {("ApiVersions", 35): 1}
        _until(lambda: kafka.connection_count == 0, "the close")
        assert kafka.connection_close_disconnected == 1
        with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as s:
            s.sendall(struct.pack(">i", 0))  # a frame size of 0: bad input, closed
            _until(lambda: kafka.connection_close_bad_input == 1, "the bad-input close")
        assert kafka.connection_creation == 2 and kafka.connection_count == 0
    finally:
        listener.stop()
