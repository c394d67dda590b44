"""The producer's sender thread survives an unexpected error in one round: a dead sender would
leave every later send unanswered and ``flush()`` waiting until its timeout."""

from __future__ import annotations

import pytest

from rillet import Producer

pytestmark = pytest.mark.timeout(30)


def test_sender_thread_survives_an_unexpected_error(broker) -> None:
    broker.create("t", 1)
    with Producer(bootstrap_servers=broker.address, linger_ms=0) as p:
        assert p.send("t", b"before").get(5).offset == 0
        sender = p._sender
        real = sender.acc.drain
        calls = []

        def broken_once(*args):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("injected bug")
            return real(*args)

        sender.acc.drain = broken_once
        later = [p.send("t", f"later-{i}".encode()) for i in range(3)]
        p.flush(10)
        assert calls and sender.is_alive()
        assert [f.get(5).offset for f in later] == [1, 2, 3]
