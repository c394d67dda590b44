"""Window specifications of ``rillet.streams`` (docs/streams.md "Windows, suppression and
joins"): which windows a record at time ``t`` falls in, when a window closes, and how a
windowed key is serialized. Pure functions and frozen values, as Kafka Streams 3.x defines
them; the processors that use them live in ``windowed.py`` and ``joins.py``.

All times are event times in milliseconds. A window closes when the stream time (the
largest timestamp the task has seen) reaches its end plus the grace period; a record that
arrives for a closed window is *late* and is dropped (counted and logged).

* :class:`TumblingWindows` ``(size_ms)``: ``[n*size, (n+1)*size)``, one per record.
* :class:`HoppingWindows` ``(size_ms, advance_ms)``: windows of ``size_ms`` starting every
  ``advance_ms`` (``size / advance`` per record, overlapping).
* :class:`SlidingWindows` ``(time_difference_ms)``: Kafka's sliding aggregation windows,
  ``[start, start + time_difference]`` *inclusive at both ends*, one for every distinct set
  of records that lie within ``time_difference`` of each other.
* :class:`SessionWindows` ``(inactivity_gap_ms)``: a session grows while records of the
  key arrive within ``inactivity_gap`` of it; ``[first, last]``, inclusive.
* :class:`JoinWindows` ``(before_ms, after_ms)``: a left record at ``t`` joins right records
  with ``t - before <= t' <= t + after``.

Worked example (tumbling, size 60 000, grace 10 000): a record at 125 000 falls in
``[120000, 180000)``; that window closes once stream time reaches 190 000, and a record at
170 000 that arrives after a record at 195 000 is late and dropped.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import field

from rillet.frozen import frozen

from .api import Serde, Window, Windowed

_LONG = struct.Struct(">q")


def _check_ms(name: str, value: object, *, positive: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (milliseconds), got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0 ms, got {value}")
    if not positive and value < 0:
        raise ValueError(f"{name} must be >= 0 ms, got {value}")
    return value


@frozen
class HoppingWindows:
    """Fixed-size windows ``[start, start + size_ms)`` starting every ``advance_ms`` (at
    multiples of ``advance_ms`` from epoch 0). ``advance_ms == size_ms``: tumbling."""

    size_ms: int
    advance_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        _check_ms("size_ms", self.size_ms, positive=True)
        _check_ms("advance_ms", self.advance_ms, positive=True)
        _check_ms("grace_ms", self.grace_ms, positive=False)
        if self.advance_ms > self.size_ms:
            raise ValueError(f"advance_ms ({self.advance_ms}) must be <= size_ms "
                             f"({self.size_ms}): windows would leave gaps")

    def windows_for(self, timestamp: int) -> list[Window]:
        """The windows a record at ``timestamp`` (>= 0) belongs to, by start. Kafka's
        ``TimeWindows.windowsFor``."""
        if timestamp < 0:
            return []
        start = max(0, timestamp - self.size_ms + self.advance_ms)
        start = start // self.advance_ms * self.advance_ms
        out = []
        while start <= timestamp:
            out.append(Window(start, start + self.size_ms))
            start += self.advance_ms
        return out

    def close_time(self, window: Window) -> int:
        """The stream time at which ``window`` closes (no more updates)."""
        return window.end + self.grace_ms

    def retention_ms(self) -> int:
        """How long the window store keeps a window (Kafka: size + grace)."""
        return self.size_ms + self.grace_ms


class TumblingWindows(HoppingWindows):
    """Non-overlapping windows ``[n*size_ms, (n+1)*size_ms)``: each record in exactly one."""

    def __init__(self, size_ms: int, grace_ms: int = 0) -> None:
        HoppingWindows.__init__(self, size_ms, size_ms, grace_ms)

    def __repr__(self) -> str:
        return f"TumblingWindows(size_ms={self.size_ms}, grace_ms={self.grace_ms})"


@frozen
class SlidingWindows:
    """Kafka's sliding aggregation windows: a window ``[t - d, t]`` ends at every record and
    one ``[t + 1, t + 1 + d]`` starts right after every record that has a later record
    within ``d``; both ends inclusive (``d = time_difference_ms``). A record at ``t < d``
    goes in ``[0, d]`` instead of a window reaching before 0."""

    time_difference_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        _check_ms("time_difference_ms", self.time_difference_ms, positive=True)
        _check_ms("grace_ms", self.grace_ms, positive=False)

    def close_time(self, window: Window) -> int:
        """Stream time at which ``window`` closes: its end is inclusive, so one ms after
        end + grace (Kafka 3.x: a window is updated while end >= stream time - grace)."""
        return window.end + self.grace_ms + 1

    def retention_ms(self) -> int:
        """Kafka: ``2 * time_difference + grace`` (a record reads windows up to 2d back)."""
        return 2 * self.time_difference_ms + self.grace_ms

    @property
    def size_ms(self) -> int:
        return self.time_difference_ms


@frozen
class SessionWindows:
    """Sessions per key: records closer than or exactly ``inactivity_gap_ms`` apart share a
    session ``[first, last]`` (inclusive); a record between two sessions merges them."""

    inactivity_gap_ms: int
    grace_ms: int = 0

    def __post_init__(self) -> None:
        _check_ms("inactivity_gap_ms", self.inactivity_gap_ms, positive=True)
        _check_ms("grace_ms", self.grace_ms, positive=False)

    def is_late(self, merged: Window, stream_time: int) -> bool:
        """A record whose (merged) session ends before ``stream_time - grace`` is dropped
        (Kafka's rule: the session it would form is already closed)."""
        return merged.end < stream_time - self.grace_ms

    def final_time(self, session: Window) -> int:
        """The first stream time at which no accepted record can change ``session`` any
        more: a record merging with it has ``t <= end + gap``, and is accepted only while
        ``max(end, t) >= stream_time - grace``. (Kafka's suppress emits at ``end + gap +
        grace``, one ms early: a record at exactly that time still extends the session.)"""
        return session.end + self.inactivity_gap_ms + self.grace_ms + 1

    def retention_ms(self) -> int:
        """gap + grace + 1: a session ending at stream time - gap - grace can still take a
        record (Kafka keeps gap + grace, one ms short of that)."""
        return self.inactivity_gap_ms + self.grace_ms + 1


@frozen
class JoinWindows:
    """A left record at ``t`` joins right records with ``t - before_ms <= t' <= t +
    after_ms`` (``after_ms`` None: same as ``before_ms``, Kafka's
    ``ofTimeDifferenceAndGrace``). A record's join window closes when stream time passes
    its end plus ``grace_ms``; then a left/outer join emits it unmatched if nothing joined."""

    before_ms: int
    after_ms: int | None = None
    grace_ms: int = 0

    def __post_init__(self) -> None:
        _check_ms("before_ms", self.before_ms, positive=False)
        if self.after_ms is None:
            object.__setattr__(self, "after_ms", self.before_ms)
        _check_ms("after_ms", self.after_ms, positive=False)
        _check_ms("grace_ms", self.grace_ms, positive=False)

    @property
    def size_ms(self) -> int:
        return self.before_ms + self.after_ms  # type: ignore[operator]

    def retention_ms(self) -> int:
        """before + after + grace + 1: a record must be kept until stream time passes its
        timestamp + the far end + grace (Kafka's before + after + grace drops a zero-width
        window's records at once)."""
        return self.size_ms + self.grace_ms + 1

    def matches(self, left_ts: int, right_ts: int) -> bool:
        return left_ts - self.before_ms <= right_ts <= left_ts + self.after_ms  # type: ignore[operator]


TimeWindows = HoppingWindows | SlidingWindows
AnyWindows = HoppingWindows | SlidingWindows | SessionWindows


# --------------------------------------------------------------------------- serdes


def _inner_or_default(inner: Serde | None, default: Callable[[], Serde] | None) -> Serde:
    # The DSL leaves a serde None for "the application's default"; Topology.compile fills
    # plain serdes in, and a windowed serde falls back to the topology's default key serde
    if inner is not None:
        return inner
    if default is not None:
        return default()
    from .serdes import Bytes

    return Bytes


@frozen
class TimeWindowedSerde:
    """A time-windowed key as Kafka's ``TimeWindowedSerializer``: the key's bytes, then the
    window start (8 bytes, big-endian); the end is ``start + window_size_ms``."""

    inner: Serde | None
    window_size_ms: int
    default: Callable[[], Serde] | None = field(default=None, compare=False, repr=False)

    def _key(self) -> Serde:
        return _inner_or_default(self.inner, self.default)

    def with_defaults(self, key_serde: Serde, value_serde: Serde) -> TimeWindowedSerde:
        """This serde with ``inner`` None replaced by the application's default key serde
        (for ``Topology.compile``)."""
        return self if self.inner is not None else TimeWindowedSerde(key_serde,
                                                                     self.window_size_ms)

    def serialize(self, topic: str, data: Windowed) -> bytes:
        if not isinstance(data, Windowed):
            raise TypeError(f"expected a Windowed key, got {type(data).__name__}")
        return self._key().serialize(topic, data.key) + _LONG.pack(data.window.start)

    def deserialize(self, topic: str, data: bytes) -> Windowed:
        if len(data) < 8:
            raise ValueError(f"time-windowed key too short: {len(data)} bytes")
        start = _LONG.unpack_from(data, len(data) - 8)[0]
        return Windowed(self._key().deserialize(topic, data[:-8]),
                        Window(start, start + self.window_size_ms))


@frozen
class SessionWindowedSerde:
    """A session-windowed key as Kafka's ``SessionWindowedSerializer``: the key's bytes,
    then the session end and start (8 bytes each, big-endian)."""

    inner: Serde | None
    default: Callable[[], Serde] | None = field(default=None, compare=False, repr=False)

    def _key(self) -> Serde:
        return _inner_or_default(self.inner, self.default)

    def with_defaults(self, key_serde: Serde, value_serde: Serde) -> SessionWindowedSerde:
        return self if self.inner is not None else SessionWindowedSerde(key_serde)

    def serialize(self, topic: str, data: Windowed) -> bytes:
        if not isinstance(data, Windowed):
            raise TypeError(f"expected a Windowed key, got {type(data).__name__}")
        return (self._key().serialize(topic, data.key) + _LONG.pack(data.window.end)
                + _LONG.pack(data.window.start))

    def deserialize(self, topic: str, data: bytes) -> Windowed:
        if len(data) < 16:
            raise ValueError(f"session-windowed key too short: {len(data)} bytes")
        end = _LONG.unpack_from(data, len(data) - 16)[0]
        start = _LONG.unpack_from(data, len(data) - 8)[0]
        return Windowed(self._key().deserialize(topic, data[:-16]), Window(start, end))


def merge_sessions(sessions: Iterator[Window] | list[Window], timestamp: int) -> Window:
    """The session a record at ``timestamp`` forms with the ``sessions`` it falls within
    the gap of."""
    start = end = timestamp
    for w in sessions:
        start = min(start, w.start)
        end = max(end, w.end)
    return Window(start, end)


__all__ = [
    "AnyWindows", "HoppingWindows", "JoinWindows", "SessionWindowedSerde", "SessionWindows",
    "SlidingWindows", "TimeWindowedSerde", "TimeWindows", "TumblingWindows", "merge_sessions",
]
