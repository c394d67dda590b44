"""Kafka's wire protocol by hand, for tests that need a client no library would be: one kio
request framed (size prefix, request header, body), and one response read back and decoded.

Shared by the integration tests of the KAFKA listener (import from here)."""

from __future__ import annotations

import io
import struct

from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer


def frame(api_key: int, version: int, body, cid: int = 1, client_id: str = "raw") -> bytes:
    """One request as it goes on the wire: the size prefix, the header of the API's version
    (kio picks it), the body."""
    cls = load_request_schema(api_key, version)
    header = cls.__header_schema__(request_api_key=api_key, request_api_version=version,
                                   correlation_id=cid, client_id=client_id)
    buf = io.BytesIO()
    entity_writer(cls.__header_schema__)(buf, header)
    entity_writer(cls)(buf, body)
    data = buf.getvalue()
    return struct.pack(">i", len(data)) + data


def receive_frame(sock) -> bytes:
    """One response frame (without its size prefix); ConnectionError if the broker closes."""
    def exact(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the broker")
            out += chunk
        return out

    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def receive_with_cid(sock, api_key: int, version: int):
    """``(correlation id, kio response body)`` of the next response on ``sock``, decoded as
    ``api_key`` at ``version``."""
    data = receive_frame(sock)
    cls = load_response_schema(api_key, version)
    header, at = entity_reader(cls.__header_schema__)(data, 0)
    return header.correlation_id, entity_reader(cls)(data, at)[0]


def receive(sock, api_key: int, version: int):
    """The next response on ``sock``, decoded as ``api_key`` at ``version``."""
    return receive_with_cid(sock, api_key, version)[1]
