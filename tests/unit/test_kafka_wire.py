"""The Kafka frame codec (actors/kafka_wire.py) and dispatch table: real encodings by kio,
strict decoding, and a hypothesis fuzz: any bytes give a Request or a FrameError, never
another exception."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.request_header.v2.header import RequestHeader
from kio.serial import entity_writer
from rillet.actors import kafka_dispatch as D
from rillet.actors import kafka_wire as W

D.load_handlers()
VERSIONS = D.served_versions()


def _frame(version=3, cid=7, api_key=18) -> bytes:
    buf = io.BytesIO()
    entity_writer(RequestHeader)(buf, RequestHeader(
        request_api_key=api_key, request_api_version=version, correlation_id=cid, client_id="c"))
    entity_writer(ApiVersionsRequest)(
        buf, ApiVersionsRequest(client_software_name="n", client_software_version="v"))
    return buf.getvalue()


def test_decode_api_versions_request() -> None:
    req = W.decode_request(_frame(), VERSIONS)
    assert (req.api_key, req.api_version, req.correlation_id, req.client_id) == (18, 3, 7, "c")
    assert req.body.client_software_name == "n"


def test_trailing_bytes_in_a_frame_are_ignored_and_truncation_refused() -> None:
    assert W.decode_request(_frame() + b"xyz", VERSIONS).trailing == 3  # as Kafka's broker
    with pytest.raises(W.FrameError, match="undecodable"):
        W.decode_request(_frame()[:-2], VERSIONS)


def test_unknown_key_and_version() -> None:
    with pytest.raises(W.FrameError, match="unknown API key"):
        W.decode_request(struct.pack(">hhi", 999, 0, 1), VERSIONS)
    with pytest.raises(W.UnsupportedVersion) as e:
        W.decode_request(struct.pack(">hhi", 18, 50, 4), VERSIONS)
    assert e.value.correlation_id == 4


@pytest.mark.parametrize("size", [0, -1, 2**31 - 1, 101])
def test_frame_size_bounds(size: int) -> None:
    with pytest.raises(W.FrameError):
        W.frame_size(struct.pack(">i", size), 100)
    assert W.frame_size(struct.pack(">i", 100), 100) == 100


def test_every_api_versions_version_encodes() -> None:
    for version in range(0, 4):
        req = W.decode_request(_frame(version=version), VERSIONS) if version >= 3 else None
        call = D.Call(req or W.Request(18, version, 1, None, None, 0), None,
                      D.KafkaEndpoint("h", 1), lambda r: None)
        out = W.encode_response(1, D.HANDLERS[18].handler(call))
        assert struct.unpack_from(">ii", out) == (len(out) - 4, 1)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([b"", _frame()[:8], _frame()]))
def test_fuzz_decoder_only_frame_errors(tail: bytes, head: bytes) -> None:
    try:
        W.decode_request(head + tail, VERSIONS)
    except W.FrameError:
        pass
