"""Well-formed Kafka requests with arbitrary field values, every API the KAFKA listener serves.

``test_kafka_listener.py`` sends bad frames (sizes, unknown keys, truncation); here each frame
is a valid request of a version the listener announces, built by hypothesis from kio's schema
for that version (fuzz_support.py), sent over one TCP connection to a real broker, so every
handler and its translation to rillet's requests is reached. Each must be answered (Produce
with acks=0 excepted) and the broker must log nothing at ERROR: a handler that raises closes
the connection and is logged (kafka_dispatch.py), which is a bug for a request that decodes.
SaslAuthenticate without a handshake is the one request Kafka answers by closing the
connection; it is left out. 10 requests per API (100 with ``HYPOTHESIS_PROFILE=thorough``).
"""

from __future__ import annotations

import socket

import pytest
from fuzz_support import Strategies
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka_raw import frame, receive, receive_with_cid
from kio.index import load_request_schema
from kio.schema.metadata.v12.request import MetadataRequest
from rillet.actors.kafka_dispatch import HANDLERS, load_handlers

from tests.support import examples, logged_errors

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KAFKA_TOPICS = [("t", 3)]
SASL_AUTHENTICATE = 36


def _schemas() -> dict[int, list[tuple[int, type]]]:
    """api key -> [(version, kio request class)] for what the listener serves."""
    load_handlers()
    out: dict[int, list[tuple[int, type]]] = {}
    for key, api in sorted(HANDLERS.items()):
        if key == SASL_AUTHENTICATE:
            continue
        out[key] = [(v, load_request_schema(key, v))
                    for v in range(api.min_version, api.max_version + 1)]
    return out


def test_well_formed_kafka_requests_with_arbitrary_values(kafka) -> None:
    cluster, bootstrap = kafka
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    address = (host, int(port))
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(frame(3, 12, MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                                  include_topic_authorized_operations=False)))
        topic_ids = [t.topic_id for t in receive(sock, 3, 12).topics]
    strategies = Strategies(topic_ids)
    schemas = _schemas()
    conn = [socket.create_connection(address, timeout=30)]
    closed: list[str] = []
    cid = [1000]
    try:
        def fuzz(key: int, versions: list[tuple[int, type]]) -> None:
            @settings(max_examples=examples(10), deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.generate])
            @given(data=st.data())
            def send(data) -> None:
                version, cls = data.draw(st.sampled_from(versions))
                request = data.draw(strategies.strategy(cls))
                cid[0] += 1
                conn[0].sendall(frame(key, version, request, cid=cid[0]))
                if key == 0 and request.acks == 0:
                    return  # Produce with acks=0: no answer by design
                try:
                    answered, _ = receive_with_cid(conn[0], key, version)
                except (ConnectionError, OSError) as e:
                    closed.append(f"api {key} v{version}: {request!r} -> {e!r}"[:1500])
                    conn[0].close()
                    conn[0] = socket.create_connection(address, timeout=30)
                    return
                assert answered == cid[0]

            send()

        for key, versions in schemas.items():
            fuzz(key, versions)
        assert not closed, "connections closed:\n" + "\n".join(closed[:5])
        logged = logged_errors(cluster)
        assert not logged, "\n".join(logged[:20])
        assert cluster.pid(1) is not None
    finally:
        conn[0].close()
