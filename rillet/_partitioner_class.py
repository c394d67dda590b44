"""``partitioner.class``: Kafka's round-robin partitioner or a custom one (issue #21).

Values: None or ``"default"`` (sticky for keyless records, murmur2 of the key otherwise);
``"round_robin"`` or Kafka's ``org.apache.kafka.clients.producer.RoundRobinPartitioner``
(each record, keyed or not, to the next partition in turn); a callable in kafka-python's
form ``fn(key_bytes_or_None, all_partitions, available_partitions) -> partition``; or
``"module:attr"`` naming such a callable (importable from the working directory).
Records sent with an explicit ``partition`` bypass it, as in Kafka.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from typing import Any

from rillet._imports import import_object
from rillet.errors import ConfigError

ROUND_ROBIN = ("round_robin", "org.apache.kafka.clients.producer.RoundRobinPartitioner")


class RoundRobin:
    def __init__(self) -> None:
        self._next: dict[str, itertools.count] = {}

    def __call__(self, topic: str, key: bytes | None, n: int) -> int:
        counter = self._next.get(topic)
        if counter is None:
            counter = self._next[topic] = itertools.count()
        return next(counter) % n


def _custom(fn: Callable) -> Callable[[str, bytes | None, int], int]:
    def choose(topic: str, key: bytes | None, n: int) -> int:
        partitions = list(range(n))
        chosen = fn(key, partitions, partitions)
        if not isinstance(chosen, int) or not 0 <= chosen < n:
            raise ConfigError(f"partitioner.class returned {chosen!r} for topic {topic!r} "
                              f"({n} partitions)")
        return chosen
    return choose


def check(key: str, value: Any) -> Any:
    """Config-time validation: the value as given (resolved again by ``load``)."""
    load(value, key)
    return value


def load(spec: Any, key: str = "partitioner.class"
         ) -> Callable[[str, bytes | None, int], int] | None:
    if spec is None or spec == "default":
        return None
    if callable(spec):
        return _custom(spec)
    if spec in ROUND_ROBIN:
        return RoundRobin()
    if isinstance(spec, str) and (":" in spec or "." in spec):
        if "" not in sys.path:
            sys.path.append("")
        try:
            fn = import_object(spec)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"{key}={spec!r}: cannot load it ({e})") from None
        if not callable(fn):
            raise ConfigError(f"{key}={spec!r} is not callable")
        return _custom(fn)
    raise ConfigError(f"{key}={spec!r}: use default, round_robin, a callable or module:attr")
