"""The controller mutation quota (KIP-599), Kafka's arithmetic. Pure: time is an argument.

``controller_mutation_rate`` (a client quota key, coordinator/quotas.py; entities and
precedence as the other keys) bounds how many partitions a user / client id may create or
delete per second: CreateTopics counts each new topic's partitions, CreatePartitions the
partitions it adds, DeleteTopics each deleted topic's partitions.

**Measured by a token bucket** (Kafka's ``TokenBucket``): it holds at most ``burst =
rate x (controller.quota.window.num - 1) x controller.quota.window.size.seconds`` tokens,
starts full, refills at ``rate`` per second, and each mutation takes its partitions' worth
(going negative is allowed). The throttle of a bucket below zero is the time to refill
it to zero: ``-tokens / rate`` seconds.

**Strict and permissive** (``admit``), as Kafka's ``StrictControllerMutationQuota`` /
``PermissiveControllerMutationQuota``. Strict (CreateTopics v6+, CreatePartitions v3+,
DeleteTopics v5+, and rillet's native admin): a request's topics are taken in order; a topic
is admitted while the bucket is not below zero *before* it (so one large topic may take the
bucket far below zero), and once one is refused, every later one is too, with
THROTTLING_QUOTA_EXCEEDED; the answer's throttle is the refusal's (0 when all were
admitted). Permissive (older versions, whose clients know no such error): every topic is
admitted and counted; the answer's throttle is the bucket's afterwards.

Worked example: rate 5/s, 3 windows of 1 s: burst 10. CreateTopics (strict) of a topic with
15 partitions: admitted (10 tokens), bucket at -5. Then a topic of 1 partition at once:
refused, throttle 5 / 5 = 1,000 ms; after that second (bucket back at 0) it is admitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rillet.frozen import frozen


@dataclass(slots=True)
class TokenBucket:
    """Kafka's TokenBucket. Not thread-safe: its owner locks."""

    tokens: float | None = None  # None: never used (full)
    last_ms: float = 0.0

    def _refill(self, rate: float, burst: float, now_ms: float) -> None:
        if self.tokens is None:
            self.tokens = burst
        else:
            self.tokens = min(burst, self.tokens + rate * max(0.0, now_ms - self.last_ms) / 1000)
        self.last_ms = now_ms

    def measure(self, rate: float, burst: float, now_ms: float) -> float:
        self._refill(rate, burst, now_ms)
        return self.tokens  # type: ignore[return-value]

    def record(self, value: float, rate: float, burst: float, now_ms: float) -> None:
        self._refill(rate, burst, now_ms)
        self.tokens = min(burst, self.tokens - value)  # type: ignore[operator]


def burst(rate: float, num: int, window_s: float) -> float:
    return rate * max(1, num - 1) * window_s


def throttle_ms(tokens: float, rate: float) -> int:
    """The time (ms) for a bucket at ``tokens`` to refill to zero (0: not below zero)."""
    return int(round(-tokens / rate * 1000)) if tokens < 0 else 0


@frozen
class Admission:
    admitted: tuple[bool, ...]  # per cost, in order
    throttle_ms: int  # the answer's throttle_time_ms


def admit(bucket: TokenBucket, rate: float, num: int, window_s: float, now_ms: float,
          costs: Sequence[int], strict: bool) -> Admission:
    """Which of a request's mutations (``costs``: partitions each) go ahead, Kafka's way."""
    cap = burst(rate, num, window_s)
    admitted: list[bool] = []
    throttle = 0
    for cost in costs:
        if strict:
            if throttle > 0:
                admitted.append(False)
                continue
            tokens = bucket.measure(rate, cap, now_ms)
            if tokens < 0:
                throttle = throttle_ms(tokens, rate)
                admitted.append(False)
                continue
        bucket.record(cost, rate, cap, now_ms)
        admitted.append(True)
    if not strict:
        throttle = throttle_ms(bucket.measure(rate, cap, now_ms), rate)
    return Admission(tuple(admitted), throttle)
