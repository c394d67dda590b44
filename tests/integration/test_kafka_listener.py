"""The KAFKA listener on a real broker process: ApiVersions over a real TCP socket, and bad
input (sizes, unknown keys/versions, truncated frames, trailing garbage) closes only the
offending connection while the broker keeps serving others."""

from __future__ import annotations

import io
import socket
import struct

import pytest
from kafka_raw import receive_frame
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v2.header import RequestHeader
from kio.schema.response_header.v0.header import ResponseHeader
from kio.serial import entity_reader, entity_writer


@pytest.fixture
def kafka_addr(kafka):
    """(host, port) of the module's broker's KAFKA listener (conftest.py ``kafka``): bad
    input closes only its own connection, so the tests share one broker."""
    host, _, port = kafka[1].rpartition(":")
    return (host, int(port))


def _request(api_key=18, version=3, cid=1, body=None) -> bytes:
    buf = io.BytesIO()
    entity_writer(RequestHeader)(
        buf, RequestHeader(request_api_key=api_key, request_api_version=version,
                           correlation_id=cid, client_id="t"))
    if body is None:
        body = ApiVersionsRequest(client_software_name="t", client_software_version="1")
    entity_writer(type(body))(buf, body)
    data = buf.getvalue()
    return struct.pack(">i", len(data)) + data


def _connect(addr) -> socket.socket:
    sock = socket.create_connection(addr, timeout=30)
    return sock


def _api_versions(addr, cid=5) -> ApiVersionsResponse:
    with _connect(addr) as sock:
        sock.sendall(_request(cid=cid))
        frame = receive_frame(sock)
    header, at = entity_reader(ResponseHeader)(frame, 0)
    assert header.correlation_id == cid
    response, used = entity_reader(ApiVersionsResponse)(frame, at)
    assert at + used == len(frame)
    return response


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_api_versions_round_trip_and_pipelining(kafka_addr) -> None:
    response = _api_versions(kafka_addr)
    assert response.error_code == ErrorCode.none
    keys = {a.api_key: (a.min_version, a.max_version) for a in response.api_keys}
    assert keys[18] == (0, 3)
    # KIP-584's feature fields: this broker's metadata.version range, the finalized level
    assert [(f.name, f.min_version, f.max_version) for f in response.supported_features] == [
        ("metadata.version", 1, 3)]
    assert [(f.name, f.max_version_level) for f in response.finalized_features] == [
        ("metadata.version", 3)]
    # three pipelined requests on one connection: answered, in order
    with _connect(kafka_addr) as sock:
        sock.sendall(_request(cid=10) + _request(cid=11) + _request(cid=12))
        cids = [entity_reader(ResponseHeader)(receive_frame(sock), 0)[0].correlation_id
                for _ in range(3)]
    assert cids == [10, 11, 12]


def test_api_versions_above_range_answers_unsupported_version_in_v0(kafka_addr) -> None:
    with _connect(kafka_addr) as sock:
        raw = _request(version=3, cid=9)
        # same bytes, version bumped to 99: the broker cannot decode the body, answers v0
        raw = raw[:6] + struct.pack(">h", 99) + raw[8:]
        sock.sendall(raw)
        frame = receive_frame(sock)
    cid, error = struct.unpack_from(">ih", frame)
    assert (cid, error) == (9, ErrorCode.unsupported_version.value)


@pytest.mark.parametrize(
    "payload",
    [
        struct.pack(">i", 100 * 1024 * 1024 + 1),  # size prefix above socket.request.max.bytes
        struct.pack(">i", -7),  # negative size
        struct.pack(">i", 0),  # empty frame
        struct.pack(">i", 3) + b"abc",  # too short for a header
        _request(api_key=4242),  # unknown API key
        struct.pack(">i", len(_request()) - 7) + _request()[4:-3],  # truncated body
    ],
    ids=["100MB", "negative", "zero", "short", "unknown-key", "truncated"],
)
def test_bad_input_closes_that_connection_and_the_broker_serves_on(kafka_addr, payload) -> None:
    with _connect(kafka_addr) as bad:
        bad.sendall(payload)
        assert _closed(bad)
    assert _api_versions(kafka_addr).error_code == ErrorCode.none


def test_garbage_after_a_valid_request_answers_it_then_closes(kafka_addr) -> None:
    with _connect(kafka_addr) as sock:
        sock.sendall(_request(cid=77) + b"\xff\xff\xff\xffgarbage")
        frame = receive_frame(sock)
        assert entity_reader(ResponseHeader)(frame, 0)[0].correlation_id == 77
        assert _closed(sock)
    assert _api_versions(kafka_addr).error_code == ErrorCode.none
