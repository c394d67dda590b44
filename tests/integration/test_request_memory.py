"""queued.max.request.bytes on a real broker: a burst of large requests takes the broker's
memory well below what it takes without the bound, and it keeps serving afterwards.

Issue #11: five 100 MB frames took a broker to a 448 MB peak; nothing bounded the bytes of
requests in flight. The peak is the broker process's VmHWM (/proc/<pid>/status)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_helpers import batch
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

pytestmark = [pytest.mark.integration]

MiB = 1 << 20
FRAME = 24 * MiB
REQUESTS = 40  # 960 MiB sent at once
BOUND = 48 * MiB
# ZeroMQ's read-ahead (up to RCVHWM messages per connection, kept large: see ServerEndpoint)
# is outside the bound, so the peak is not bound + a frame or two; what the bound removes is
# the Python side's copies (decoded requests, mailboxes, appends in progress) on top of it.
# How much of the burst ZeroMQ holds at the peak is timing: measured on a quiet machine,
# 528-816 MiB bounded (the same spread before and after sessions were hosted on the I/O
# thread, 2026-12-07) against 1008-1104 MiB unbounded for the 960 MiB burst. The limit is
# the burst itself: ZeroMQ may hold much of it, the Python side must not add to it. (It was
# 4/5 of the burst, which quiet runs passed half the time; the bound's own accounting is
# exact in tests/unit/transport/test_request_memory.py.)
LIMIT = REQUESTS * FRAME


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _burst(cluster_factory, bound: int) -> tuple[int, int]:
    """(peak growth in bytes, answers received) for REQUESTS large produce requests at once."""
    c = cluster_factory(
        1,
        {
            "socket.request.max.bytes": str(FRAME + MiB),
            "message.max.bytes": str(FRAME + MiB),
            "queued.max.request.bytes": str(bound),
        },
    )
    address = c.address(1)
    pid = c.pid(1)
    with ClientEndpoint(max_request_bytes=FRAME + MiB) as client:
        topic = P.CreatableTopic(name="big", num_partitions=1, replication_factor=1)
        created = client.request(address, P.CreateTopicsRequest(topics=(topic,)), 10_000)
        assert created.result(15).topics[0].error_code == 0
        baseline = _status_kib(pid, "VmRSS") * 1024
        big = batch([b"v" * (FRAME - 4096)])  # one record batch, appended in full
        part = P.ProducePartition(partition=0, records=big)
        request = P.ProduceRequest(acks=1, topics=(P.ProduceTopic(name="big", partitions=(part,)),))
        futures = [client.request(address, request, 60_000) for _ in range(REQUESTS)]
        answers = sum(1 for f in futures if f.result(90).topics[0].partitions[0].error_code == 0)
        peak = _status_kib(pid, "VmHWM") * 1024 - baseline
        # the broker is up and serves a normal client afterwards
        ok = P.ProducePartition(partition=0, records=batch([b"after"]))
        small = P.ProduceRequest(acks=1, topics=(P.ProduceTopic(name="big", partitions=(ok,)),))
        reply = client.request(address, small, 10_000).result(15)
        assert reply.topics[0].partitions[0].error_code == 0
    assert c.pid(1) == pid
    return peak, answers


@pytest.mark.timeout(180)
def test_a_burst_of_large_requests_stays_within_the_bound(cluster_factory) -> None:
    peak, answers = _burst(cluster_factory, BOUND)
    print(f"bounded at {BOUND // MiB} MiB: peak growth {peak / MiB:.0f} MiB")
    assert answers == REQUESTS  # every request was read and answered, none lost
    assert peak < LIMIT, f"peak growth {peak / MiB:.0f} MiB"


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_without_the_bound_the_same_burst_takes_more_memory(cluster_factory) -> None:
    """The control run: -1 (unbounded), to show the test above measures something. Both
    bursts in the same minutes: under a loaded machine the unbounded peak fell to 744 MiB,
    below LIMIT, while still far above a bounded run's."""
    bounded, _ = _burst(cluster_factory, BOUND)
    unbounded, _ = _burst(cluster_factory, -1)
    print(f"peak growth: bounded {bounded / MiB:.0f} MiB, unbounded {unbounded / MiB:.0f} MiB")
    assert unbounded > bounded * 1.1, (
        f"peak growth: bounded {bounded / MiB:.0f} MiB, unbounded {unbounded / MiB:.0f} MiB")
