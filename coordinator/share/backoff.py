"""The release delay of rillet's share groups (docs/queues.md, "Share-partition").

A record released with ``delay_ms`` -1 waits the group's exponential back-off before it may
be acquired again::

    nominal = min(retry.backoff.ms * retry.backoff.multiplier ** (delivery_count - 1),
                  retry.backoff.max.ms)
    delay   = nominal * (1 + JITTER * jitter)        jitter in [0, 1): +0% .. +20%

Worked example, the defaults (1000 ms, 2.0, 60000 ms): delivery 1 -> 1.0-1.2 s, 2 -> 2.0-2.4 s,
3 -> 4.0-4.8 s, ... 7 -> 60-72 s (capped). Jitter only ever adds: a record is never offered
earlier than its nominal delay, and consumers that failed together do not retry together.
The caller draws ``jitter`` (the core has no random numbers).
"""

from __future__ import annotations

JITTER = 0.2  # the most jitter adds, as a fraction of the nominal delay


def nominal_backoff_ms(
    delivery_count: int, backoff_ms: int, multiplier: float, max_ms: int
) -> int:
    """The delay before delivery ``delivery_count + 1``, without jitter (ms, >= 0)."""
    exponent = max(0, delivery_count - 1)
    try:
        value = backoff_ms * multiplier**exponent
    except OverflowError:
        value = float(max_ms)
    return max(0, int(min(value, max_ms)))


def backoff_ms(
    delivery_count: int, backoff_ms: int, multiplier: float, max_ms: int, jitter: float
) -> int:
    """The jittered delay (ms): at least the nominal one, at most 20% more."""
    nominal = nominal_backoff_ms(delivery_count, backoff_ms, multiplier, max_ms)
    jitter = min(max(jitter, 0.0), 1.0)
    return nominal + int(nominal * JITTER * jitter)
