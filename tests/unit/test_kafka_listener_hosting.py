"""The KAFKA listener handles Produce and Fetch on its loop thread and everything else on its
worker pool (actors/kafka_listener.py ``_HOSTED``), answering a connection's pipelined
requests in order either way. Real sockets, the handlers replaced by recording ones."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.response_header.v0.header import ResponseHeader
from kio.serial import entity_reader
from rillet.actors import kafka_dispatch
from rillet.actors.kafka_listener import KafkaListener

from tests.integration.kafka_raw import frame, receive_frame

pytestmark = pytest.mark.timeout(30)

PRODUCE = load_request_schema(0, 9)(transactional_id=None, acks=1,
                                    timeout=timedelta(milliseconds=1000), topic_data=())
VERSIONS = load_request_schema(18, 3)(client_software_name="t", client_software_version="1")


@pytest.fixture
def listener(monkeypatch):
    threads: dict[int, list[str]] = {0: [], 18: []}

    def recording(key, answer):
        def handler(call):
            threads[key].append(threading.current_thread().name)
            return answer

        original = kafka_dispatch.load_handlers()[key]
        monkeypatch.setitem(kafka_dispatch.HANDLERS, key, kafka_dispatch.Api(
            key, original.min_version, original.max_version, handler))

    recording(0, load_response_schema(0, 9)(responses=(), throttle_time=timedelta(0)))
    recording(18, load_response_schema(18, 3)(
        error_code=ErrorCode.none, api_keys=(), throttle_time=timedelta(0), supported_features=(),
        finalized_features_epoch=-1, finalized_features=(), zk_migration_ready=False))
    broker = SimpleNamespace(broker_configs={}, broker_id=1)
    lst = KafkaListener("127.0.0.1", 0, broker, workers=2).start()
    try:
        yield lst, threads
    finally:
        lst.stop()


def test_produce_runs_on_the_loop_thread_the_rest_on_the_pool_in_order(listener) -> None:
    lst, threads = listener
    kinds = [0, 0, 18, 0, 18, 0]  # pipelined on one connection
    data = b"".join(frame(k, 9 if k == 0 else 3, PRODUCE if k == 0 else VERSIONS, cid=i)
                    for i, k in enumerate(kinds))
    with socket.create_connection(("127.0.0.1", lst.port), timeout=10) as sock:
        sock.sendall(data)
        cids = [entity_reader(ResponseHeader)(receive_frame(sock), 0)[0].correlation_id
                for _ in kinds]
    assert cids == list(range(len(kinds)))  # answered in order, whichever thread
    assert threads[0] == ["kafka-listener"] * 4
    assert len(threads[18]) == 2 and all(t.startswith("kafka-worker") for t in threads[18])
    assert lst.hosted == 4
