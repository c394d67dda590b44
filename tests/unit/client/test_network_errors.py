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
