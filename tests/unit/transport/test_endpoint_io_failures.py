"""A ClientEndpoint never leaves a request unanswered: an error on its I/O thread fails the
request it concerns (a connection ZeroMQ cannot make) or, if the thread itself stops, every
request pending and every later one. Before, the thread died and each of its futures (and
every producer batch behind them) waited forever."""

from __future__ import annotations

import pytest
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import BrokerUnavailableError, EndpointClosedError

from tests.unit.transport.test_endpoint import EchoServer, _produce

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server():
    s = EchoServer()
    try:
        yield s
    finally:
        s.endpoint.close()


def test_a_connection_zeromq_refuses_fails_only_its_request(server) -> None:
    with ClientEndpoint() as client:
        # "abc" is no port: ZeroMQ's connect raises (on the I/O thread)
        bad = client.request("127.0.0.1:abc", P.ApiVersionsRequest(), 5000)
        good = client.request(server.address, P.ApiVersionsRequest(), 5000)
        error = bad.exception(5)
        assert isinstance(error, BrokerUnavailableError) and "127.0.0.1:abc" in str(error)
        assert error.retriable
        assert isinstance(good.result(5), P.ApiVersionsResponse)
        # and again: the I/O thread is alive, the bad address is not remembered as a connection
        assert isinstance(client.request("127.0.0.1:abc", P.ApiVersionsRequest(), 5000)
                          .exception(5), BrokerUnavailableError)
        assert isinstance(client.request(server.address, P.ApiVersionsRequest(), 5000)
                          .result(5), P.ApiVersionsResponse)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_io_thread_that_stops_on_a_bug_fails_every_request(server) -> None:
    client = ClientEndpoint()
    try:
        assert isinstance(client.request(server.address, P.ApiVersionsRequest(), 5000)
                          .result(5), P.ApiVersionsResponse)
        server.silent.set()
        pending = client.request(server.address, P.ApiVersionsRequest(), 20_000)
        acks0 = client.request(server.address, _produce(10, acks=0), 20_000)

        def bug(*args):
            raise RuntimeError("injected bug on the I/O thread")

        client._deliver = client._send_backlog = bug  # the next round of the loop raises
        queued = client.request(server.address, P.ApiVersionsRequest(), 20_000)
        for future in (pending, queued):  # failed at once, not at their 20 s timeout
            assert isinstance(future.exception(5), EndpointClosedError)
        assert acks0.done()
        later = client.request(server.address, P.ApiVersionsRequest(), 20_000)
        error = later.exception(0)  # refused at once: nobody would ever send it
        assert isinstance(error, EndpointClosedError) and "injected bug" in str(error)
    finally:
        client.close()


def test_a_request_zeromq_cannot_send_fails_only_that_request(server) -> None:
    with ClientEndpoint() as client:
        # an int is no frame: send_multipart raises TypeError on the I/O thread
        bad = client.request_raw(server.address, [b"header", 12345], 5000)
        assert isinstance(bad.exception(5), TypeError)
        assert isinstance(client.request(server.address, P.ApiVersionsRequest(), 5000)
                          .result(5), P.ApiVersionsResponse)
