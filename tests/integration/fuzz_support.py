"""For the request fuzz tests: hypothesis strategies for well-formed requests with arbitrary field values, built from a
message class's own field types: rillet's protocol dataclasses (transport/protocol.py) and
kio's Kafka schema dataclasses (whose numbers, names and durations are phantom types that
check their range on ``parse``). Numbers lean to -1..3 (partitions, epochs, acks) with
extremes mixed in; strings lean to ``NAMES``, the topic, group, transactional id and member
the fuzz tests create, so requests get past their first lookup and reach deeper code.

Shared by test_request_fuzz.py (the rillet listener) and test_kafka_request_fuzz.py (KAFKA).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import time
import types
import typing
import uuid

from hypothesis import strategies as st
from rillet.logstore.batch import BatchBuilder

NAMES = ("t", "g", "tx", "m1")

INTS = st.one_of(
    st.integers(-1, 3), st.integers(-1, 3),
    st.sampled_from([100, 5000, 60000, 127, -128, 2**15 - 1, -(2**15), 2**31 - 1, -(2**31),
                     2**31, 2**63 - 1, -(2**63)]),
    st.integers(-(2**63), 2**63 - 1),
)
STRS = st.one_of(
    st.sampled_from(NAMES), st.sampled_from(NAMES),
    st.sampled_from(["", "a" * 300, "x.y", "..", "*", "t/../x", "__consumer_offsets",
                     "__transaction_state", "__share_group_state", "cleanup.policy",
                     "compact", "retention.ms", "range", "earliest", "t.dlq"]),
    st.text(max_size=12),
)


def _batch(n: int) -> bytes:
    b = BatchBuilder()
    for i in range(n):
        b.append(int(time.time() * 1000), b"k%d" % i, b"v%d" % i)
    return b.build()


BYTES = st.one_of(st.binary(max_size=64), st.builds(_batch, st.integers(1, 3)))


class Strategies:
    """``strategy(type)`` with a cache; ``uuids`` are the ids worth hitting (topic ids)."""

    def __init__(self, uuids: list[uuid.UUID] | None = None) -> None:
        self.uuids = uuids or [uuid.UUID(int=1)]
        self._cache: dict[str, st.SearchStrategy] = {}

    def strategy(self, tp) -> st.SearchStrategy:
        key = repr(tp)
        if key not in self._cache:
            self._cache[key] = self._build(tp)
        return self._cache[key]

    def _build(self, tp) -> st.SearchStrategy:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return self.strategy(args[0])
        if origin in (typing.Union, types.UnionType):
            return st.one_of(*(self.strategy(a) for a in args))
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return st.lists(st.deferred(lambda: self.strategy(args[0])), max_size=3).map(tuple)
        if origin is tuple:
            return st.tuples(*(self.strategy(a) for a in args))
        if origin is dict:
            return st.dictionaries(self.strategy(args[0]), self.strategy(args[1]), max_size=3)
        if origin is list:
            return st.lists(self.strategy(args[0]), max_size=3)
        if tp is type(None):
            return st.none()
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            return st.builds(tp, **{f.name: st.deferred(lambda h=hints[f.name]: self.strategy(h))
                                    for f in dataclasses.fields(tp) if f.init})
        if not inspect.isclass(tp):
            raise TypeError(f"no strategy for the field type {tp!r}")
        if tp is uuid.UUID:
            return st.one_of(st.just(uuid.UUID(int=0)), st.uuids(),
                             st.deferred(lambda: st.sampled_from(self.uuids)))
        if issubclass(tp, enum.Enum):
            return st.sampled_from(list(tp))
        if issubclass(tp, bool):
            return st.booleans()
        if issubclass(tp, datetime.timedelta):
            # short: a fetch's max_wait holds its answer (and this connection) that long
            return _parsed(tp, st.one_of(st.integers(-1, 100), st.sampled_from([500, 2000])).map(
                lambda ms: datetime.timedelta(milliseconds=ms)))
        if issubclass(tp, datetime.datetime):
            return _parsed(tp, st.datetimes(timezones=st.just(datetime.UTC)))
        for base, values in ((int, INTS), (str, STRS), (bytes, BYTES), (float, st.floats())):
            if issubclass(tp, base):
                return values if tp is base else _parsed(tp, values)
        raise TypeError(f"no strategy for the field type {tp!r}")


def _parsed(cls, values: st.SearchStrategy) -> st.SearchStrategy:
    """kio's phantom types: the values their ``parse`` accepts (a range, a name pattern)."""
    parse = getattr(cls, "parse", None)
    if parse is None:
        return values

    def attempt(value):
        try:
            return parse(value)
        except (TypeError, ValueError):
            return None

    return values.map(attempt).filter(lambda v: v is not None)

