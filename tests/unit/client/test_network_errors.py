"""map_error turns transport failures into the client's typed, retriable errors."""

from __future__ import annotations

import concurrent.futures

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
