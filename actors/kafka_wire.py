"""Kafka's wire framing and message codecs (the KAFKA listener, actors/kafka_listener.py).

A Kafka request on the wire is ``int32 size`` then ``size`` bytes: a request header
(api key, api version, correlation id, client id; header v2 with tagged fields for the
flexible versions of an API) and the request body. A response is ``int32 size``, a
response header (v0: correlation id; v1: also tagged fields) and the body.

Codecs: ``kio`` (PyPI ``kio``), whose message classes are generated from Kafka's own JSON
schemas (clients/src/main/resources/common/message/*.json) for every API and version, with
a native (Rust) reader. Nothing here is hand-written per API: a handler receives kio's frozen
dataclass for its (api key, version) and returns kio's response dataclass.

Decoding is strict: a size outside 0 < size <= max, a frame too short for a header, an
API key or version rillet does not serve (except ApiVersions, which Kafka answers with
UNSUPPORTED_VERSION in its v0 shape so a client can downgrade), a body kio cannot decode raise ``FrameError``; the listener then closes the
connection (what Kafka's broker does), and the broker stays up.
"""

from __future__ import annotations

import struct
from typing import Any

from kio.serial import entity_reader, entity_writer

from rillet.frozen import frozen

from .kafka_schemas import load_request_schema

API_VERSIONS_KEY = 18
_SIZE = struct.Struct(">i")
_KEY_VERSION_CID = struct.Struct(">hhi")


class FrameError(ValueError):
    """This connection sent something rillet will not decode; close it."""


class UnsupportedVersion(FrameError):
    """An ApiVersions request at a version above the supported range: answer it in v0."""

    def __init__(self, correlation_id: int) -> None:
        super().__init__("ApiVersions version not supported")
        self.correlation_id = correlation_id


@frozen
class Request:
    """One decoded request: kio's header and body entities."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any  # kio's <Api>Request dataclass for api_version
    size: int  # the frame's bytes, for accounting
    trailing: int = 0  # bytes after the decoded body in the frame (ignored, as Kafka does)


def frame_size(prefix: bytes, max_bytes: int) -> int:
    """The size in a 4-byte prefix; FrameError unless 0 < size <= max_bytes."""
    (size,) = _SIZE.unpack(prefix)
    if size <= 0 or size > max_bytes:
        raise FrameError(f"request size {size} is outside 1..{max_bytes}")
    return size


def decode_request(frame: bytes, versions: dict[int, tuple[int, int]]) -> Request:
    """A request frame (without its size prefix) -> Request. ``versions``: api key ->
    (min, max) served (the dispatch table). FrameError/UnsupportedVersion otherwise."""
    if len(frame) < _KEY_VERSION_CID.size:
        raise FrameError(f"request of {len(frame)} bytes is too short for a header")
    api_key, version, cid = _KEY_VERSION_CID.unpack_from(frame)
    served = versions.get(api_key)
    if served is None:
        raise FrameError(f"unknown API key {api_key}")
    low, high = served
    if not low <= version <= high:
        if api_key == API_VERSIONS_KEY:
            raise UnsupportedVersion(cid)
        raise FrameError(f"API key {api_key} version {version} not served ({low}..{high})")
    try:
        body_cls = load_request_schema(api_key, version)
        header, at = entity_reader(body_cls.__header_schema__)(frame, 0)
        body, used = entity_reader(body_cls)(frame, at)
    except FrameError:
        raise
    except Exception as e:  # kio raises several kinds on truncated/garbled input
        raise FrameError(f"API key {api_key} v{version}: undecodable request ({e})") from None
    # Bytes after the body inside the frame are ignored, as Kafka's broker does (librdkafka's
    # Metadata v12 carries 3 of them); bytes after the FRAME are the next frame's size.
    return Request(api_key, version, cid, header.client_id, body, len(frame),
                   trailing=len(frame) - at - used)


class Chunks:
    """Bytes written by reference, never copied until the frame is joined: a fetch answer's
    records (a cached batch's bytes behind a restamped header). kio asks only its ``len`` and
    hands it to the buffer's ``write``; ``_Frame`` keeps the parts."""

    __slots__ = ("parts", "size")

    def __init__(self, parts: list) -> None:
        self.parts = parts
        self.size = sum(map(len, parts))

    def __len__(self) -> int:
        return self.size

    def __bool__(self) -> bool:
        return self.size > 0


class _Frame:
    """kio's output buffer: keeps references to what it is given (no BytesIO growth and
    copy); ``join`` copies once into the frame."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list = [b"\0\0\0\0"]
        self.size = 0

    def write(self, value) -> int:
        if type(value) is Chunks:
            self.parts.extend(value.parts)
        else:
            self.parts.append(value)
        n = len(value)
        self.size += n
        return n

    def join(self) -> bytes:
        self.parts[0] = _SIZE.pack(self.size)
        return b"".join(self.parts)


def encode_response(correlation_id: int, body: Any) -> bytes:
    """A kio response entity -> a size-prefixed frame, with the header its version needs
    (or a response that encodes itself: actors/kafka_produce_fast.py)."""
    fast = getattr(body, "encode_frame", None)
    if fast is not None:
        return fast(correlation_id)
    header_cls = body.__header_schema__
    frame = _Frame()
    entity_writer(header_cls)(frame, header_cls(correlation_id=correlation_id))
    entity_writer(type(body))(frame, body)
    return frame.join()
