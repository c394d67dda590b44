"""The broker's scrubber (actors/scrubber.py) driven by hand: one Scrub in flight, a byte
budget that grows at log.scrub.bytes.per.second, unchecked data first, passes restarted
every log.scrub.interval.ms. The actor is not started: its handlers are called directly."""

from __future__ import annotations

from rillet.actors.partition_messages import Scrub, ScrubReport
from rillet.actors.scrubber import Scrubber

LOG: list[tuple[tuple[str, int], Scrub]] = []


class FakeReplica:
    def __init__(self, key) -> None:
        self.key = key

    def tell(self, message) -> None:
        LOG.append((self.key, message))


def make(rate=1 << 20, interval_ms=10_000):
    LOG.clear()
    replicas = {k: FakeReplica(k) for k in (("a", 0), ("b", 0))}
    s = Scrubber(1, lambda: replicas, rate, interval_ms)
    return s, replicas


def sent(replicas):
    """Every Scrub sent, in order, as (partition, message)."""
    return list(LOG)


def answer(s, key, checked, done, unverified):
    s._done(key, ScrubReport(checked, done, unverified, False))


def test_the_rate_bounds_the_bytes_asked_for_and_one_step_is_in_flight():
    s, replicas = make(rate=1 << 20)
    s._tick(0)
    assert sent(replicas) == []  # no budget yet
    s._tick(500)  # half a second: 512 KiB
    [(key, msg)] = sent(replicas)
    assert msg.max_bytes == 512 << 10 and not msg.restart
    s._tick(900)
    assert len(sent(replicas)) == 1  # still in flight: nothing more
    answer(s, key, 512 << 10, False, 10 << 20)
    s._tick(1000)
    assert len(sent(replicas)) == 2
    assert sent(replicas)[-1][1].max_bytes <= 1 << 20  # capped at one second's worth
    # over a long run the bytes asked for never exceed rate x time (+ one second's burst)
    total = sum(m.max_bytes for _, m in sent(replicas))
    assert total <= (1 << 20) * (1000 / 1000) + (1 << 20)


def test_unchecked_data_first_then_passes_restart_after_the_interval():
    s, replicas = make(rate=1 << 30, interval_ms=10_000)
    s._tick(0)
    now = 100
    s._tick(now)
    (k1, _), = sent(replicas)
    answer(s, k1, 100, False, 0)  # k1 has nothing unchecked left, its pass goes on
    other = ("b", 0) if k1 == ("a", 0) else ("a", 0)
    now += 100
    s._tick(now)
    assert sent(replicas)[-1][0] == other  # never heard of: counts as unchecked
    answer(s, other, 100, False, 5000)
    now += 100
    s._tick(now)
    assert sent(replicas)[-1][0] == other  # still holds unchecked bytes: first
    answer(s, other, 5000, True, 0)
    now += 100
    s._tick(now)
    assert sent(replicas)[-1][0] == k1  # finish k1's pass
    answer(s, k1, 100, True, 0)
    count = len(sent(replicas))
    now += 100
    s._tick(now)
    assert len(sent(replicas)) == count  # both passes done, none due yet
    s._tick(10_150)  # the passes started at 100
    key, msg = sent(replicas)[-1]
    assert msg.restart and len(sent(replicas)) == count + 1
    assert s.passes_done == 2


def test_a_partition_that_goes_away_is_forgotten_and_a_lost_answer_times_out():
    s, replicas = make(rate=1 << 30)
    s._tick(0)
    s._tick(100)
    (key, _), = sent(replicas)
    del replicas[key]
    s._tick(200)
    assert len(sent(replicas)) == 1  # in flight: waits for the answer
    s._tick(100 + 30_000)  # no answer for 30 s: given up, the other partition goes on
    assert key not in s.states
    assert [k for k, _ in sent(replicas)][1:] == list(replicas)


def test_an_idle_scrubber_does_not_scan_its_partitions_every_tick():
    LOG.clear()
    replicas = {("t", p): FakeReplica(("t", p)) for p in range(50)}
    s = Scrubber(1, lambda: replicas, 1 << 30, 10_000)
    s._tick(0)
    now = 0
    while len({k for k, _ in LOG}) < 50 or s.in_flight is not None:  # every first pass
        now += 100
        s._tick(now)
        if s.in_flight is not None:
            answer(s, s.in_flight[0], 0, True, 0)
    scans = []
    original = s._choose
    s._choose = lambda t: scans.append(t) or original(t)
    for _ in range(20):  # two seconds of ticks with every pass done: one scan, not 20
        now += 100
        s._tick(now)
    assert len(scans) == 1
    s._tick(10_000 + 200)  # the first pass's interval is over: scanning again, restarting
    assert len(scans) == 2 and LOG[-1][1].restart
