"""map_error turns transport failures into the client's typed, retriable errors."""

from __future__ import annotations

import concurrent.futures
import time

from rillet._network import map_error
from rillet.errors import RequestTimedOutError


def test_a_future_that_timed_out_is_a_retriable_request_timeout() -> None:
    fut: concurrent.futures.Future = concurrent.futures.Future()
    try:
        fut.result(timeout=0.001)
    except concurrent.futures.TimeoutError as e:
        mapped = map_error(e)
    assert isinstance(mapped, RequestTimedOutError)
    assert mapped.retriable


def test_other_errors_pass_through() -> None:
    error = ValueError("x")
    assert map_error(error) is error


def test_a_metadata_refresh_whose_reply_never_comes_does_not_block_later_ones() -> None:
    # request_metadata_update keeps at most one refresh in flight; one whose reply is lost
    # (its future never completes) stops counting after request.timeout.ms, or the client
    # would keep its stale leaders for good
    from rillet._network import NetworkClient
    from rillet.config import producer_config
    from tests.support import wait_until

    client = NetworkClient(producer_config({"bootstrap.servers": "127.0.0.1:1",
                                            "request.timeout.ms": 200}))
    sent: list[float] = []

    def never_answered(address, msg, timeout_ms=None):
        sent.append(time.monotonic())
        return concurrent.futures.Future()

    client.request = never_answered
    try:
        client.request_metadata_update()
        client.request_metadata_update()  # one is in flight: no second request
        assert len(sent) == 1

        def refreshed_again():
            client.request_metadata_update()
            return len(sent) == 2

        wait_until(refreshed_again, 5, "a new refresh once the first is overdue")
        assert sent[1] - sent[0] >= 0.2
    finally:
        client.close()


def test_brokers_are_tried_connected_first_then_untried_then_down() -> None:
    # the metadata refresh goes to addresses()[0]: a broker never reached (maybe dead) costs
    # the whole request timeout, so live connections come first
    from rillet._network import ClusterView, NetworkClient
    from rillet.config import producer_config

    client = NetworkClient(producer_config({"bootstrap.servers": "h:4"}))
    try:
        view = ClusterView()
        view.brokers = {1: "h:1", 2: "h:2", 3: "h:3"}
        client.view = view
        states = {"h:1": False, "h:2": None, "h:3": True}
        client.endpoint.is_connected = states.get
        for _ in range(10):  # shuffled within each rank
            assert client.addresses()[0] == "h:3" and client.addresses()[-1] == "h:1"
            assert set(client.addresses()[1:3]) == {"h:2", "h:4"}
    finally:
        client.close()
