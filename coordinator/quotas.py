"""Client quotas, Kafka's model (docs/security.md, "Quotas"). Pure: time is an argument.

**Entities.** A quota is set on an entity: a user (the principal's name, ``alice`` for
``User:alice``), a client id, or both; either part may be the *default* (``None`` here,
``<default>`` in the tools) that applies to every user / client id without its own quota.
An entity is a sorted tuple of ``(entity_type, name_or_None)`` with the types ``user`` and
``client-id``. Keys: ``producer_byte_rate`` and ``consumer_byte_rate`` (bytes per second)
and ``request_percentage`` (percent of one thread's time, per second); and
``controller_mutation_rate`` (partitions created or deleted per second, KIP-599:
coordinator/mutation_quota.py).

**Stored in the metadata log**: ``ClientQuotaRecord`` (KRaft's record: entity, key, value,
``remove``), applied into ``MetadataImage.client_quotas`` ({entity: {key: value}}), kept in
metadata snapshots (``snapshot_records``).

**Which quota applies** (``resolve``): Kafka's precedence, the first entity with the key::

    (user, client-id)  (user, <default> client-id)  (user)
    (<default> user, client-id)  (<default> user, <default> client-id)  (<default> user)
    (client-id)  (<default> client-id)

The quota is shared by everything its *metric tags* name: a quota on ``(user)`` is shared
by every client id of that user, a default quota gives each user (or client id) its own.

**Throttled by a token bucket** (``Bucket``): a client may send ``(num - 1)`` windows of its
quota at once (the burst Kafka's ``Rate`` allows a new client, its window padded to
``num - 1`` samples), then the quota: the bucket refills at the quota up to that burst, each
request takes its size out, and a bucket below zero is the throttle, the time it takes to
refill to zero (``-tokens / quota``). Kafka's own remedy for the ``Rate``'s bursts
(KIP-599's ``TokenBucket``, the controller mutation quota's): under the sampled ``Rate``
below, a client fast enough to spend the burst within one sample is let through again
with a whole burst each time that sample expires (every ``num`` windows), so its rate
over 30 s swings between 0.75x and 1.15x the quota with Kafka's 11 windows; the bucket
holds it to the quota from the first burst on (tests/unit/coordinator/test_quota_core.py).

**Measured over windows** (``Rate``, kept for reference and the simulation that shows the
bursts): Kafka's SampledStat: ``quota.window.num`` samples
(11) of ``quota.window.size.seconds`` (1 s); the rate is the sum of the live samples over
the time they cover, padded to ``num - 1`` whole windows while the history is short (so a
new client is not throttled for its first bytes). **Throttle time** (``throttle_ms``), as
Kafka's ``QuotaUtils.throttleTime``: ``(rate - quota) / quota * window`` ms, the time for
the window to bring the rate back to the quota; 0 while the rate is within it.

Worked example: quota 1,000 B/s, 11 windows of 1 s, a new client sends 12,000 B at t=0:
the window is padded to 10 s, the rate is 1,200 B/s, so the throttle is
(1200 - 1000) / 1000 * 10,000 = 2,000 ms; the bucket (a burst of 10,000 B) says the same,
2,000 B short at 1,000 B/s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from rillet.frozen import frozen

from .mutation_quota import TokenBucket

USER = "user"
CLIENT_ID = "client-id"
ENTITY_TYPES = (USER, CLIENT_ID)
PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"  # KIP-599: coordinator/mutation_quota.py
QUOTA_KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE,
              CONTROLLER_MUTATION_RATE)

Entity = tuple[tuple[str, str | None], ...]
Quotas = Mapping[Entity, Mapping[str, float]]


class QuotaError(ValueError):
    """A malformed entity, key or value (INVALID_REQUEST on the wire)."""


@frozen(kw_only=True)
class ClientQuotaRecord:
    """``key`` of ``entity`` is ``value`` from this record on; ``remove``: it is unset."""

    entity: Entity
    key: str
    value: float = 0.0
    remove: bool = False


def entity_of(parts: Iterable[tuple[str, str | None]]) -> Entity:
    """The canonical entity of ``(type, name or None)`` parts; QuotaError if malformed."""
    out: dict[str, str | None] = {}
    for kind, name in parts:
        if kind not in ENTITY_TYPES:
            raise QuotaError(f"unknown entity type {kind!r}; valid: user, client-id")
        if kind in out:
            raise QuotaError(f"entity type {kind!r} given twice")
        if name is not None and (not isinstance(name, str) or not name or len(name) > 255):
            raise QuotaError(f"invalid {kind} name {name!r}")
        out[kind] = name
    if not out:
        raise QuotaError("an entity needs a user, a client-id or both")
    return tuple(sorted(out.items()))


def validate_value(key: str, value: float) -> float:
    if key not in QUOTA_KEYS:
        raise QuotaError(f"unknown quota {key!r}; valid: {', '.join(QUOTA_KEYS)}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise QuotaError(f"{key} must be a number, not {value!r}")
    if value <= 0:
        raise QuotaError(f"{key} must be positive, not {value!r}")
    if key in (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE) and value != int(value):
        raise QuotaError(f"{key} is a whole number of bytes per second, not {value!r}")
    return float(value)


def apply_record(quotas: Quotas, record: ClientQuotaRecord) -> dict[Entity, dict[str, float]]:
    """The quotas after ``record`` (replay never fails: removing an absent key is a no-op)."""
    out = {e: dict(kv) for e, kv in quotas.items()}
    entity = tuple(tuple(p) for p in record.entity)
    values = out.setdefault(entity, {})
    if record.remove:
        values.pop(record.key, None)
    else:
        values[record.key] = float(record.value)
    if not values:
        del out[entity]
    return out


def snapshot_records(quotas: Quotas) -> list[ClientQuotaRecord]:
    return [
        ClientQuotaRecord(entity=e, key=k, value=v)
        for e in sorted(quotas, key=repr)
        for k, v in sorted(quotas[e].items())
    ]


# ------------------------------------------------------------------------- admin decisions


@frozen
class QuotaOp:
    key: str
    value: float = 0.0
    remove: bool = False


@frozen
class AlterOutcome:
    error: str = "NONE"
    message: str | None = None


def alter(
    quotas: Quotas, entries: Sequence[tuple[Iterable[tuple[str, str | None]], Sequence[QuotaOp]]]
) -> tuple[list[ClientQuotaRecord], list[AlterOutcome]]:
    """Kafka's AlterClientQuotas: per entry, every op is valid or none is applied."""
    records: list[ClientQuotaRecord] = []
    results: list[AlterOutcome] = []
    for parts, ops in entries:
        try:
            entity = entity_of(parts)
            mine: list[ClientQuotaRecord] = []
            seen: set[str] = set()
            for op in ops:
                if op.key in seen:
                    raise QuotaError(f"{op.key} given twice for one entity")
                seen.add(op.key)
                if op.remove:
                    if op.key not in QUOTA_KEYS:
                        raise QuotaError(f"unknown quota {op.key!r}")
                    mine.append(ClientQuotaRecord(entity=entity, key=op.key, remove=True))
                else:
                    value = validate_value(op.key, op.value)
                    mine.append(ClientQuotaRecord(entity=entity, key=op.key, value=value))
        except QuotaError as e:
            results.append(AlterOutcome("INVALID_REQUEST", str(e)))
            continue
        records += mine
        results.append(AlterOutcome())
    return records, results


MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED = 0, 1, 2  # Kafka's ClientQuotaFilterComponent


def describe(
    quotas: Quotas, components: Sequence[tuple[str, int, str | None]], strict: bool = False
) -> list[tuple[Entity, dict[str, float]]]:
    """Kafka's DescribeClientQuotas: entities matching every ``(type, match_type, match)``
    component (EXACT name, DEFAULT, SPECIFIED: any non-default name); ``strict``: and no
    other entity type. Sorted by entity."""
    wanted: dict[str, tuple[int, str | None]] = {}
    for kind, match_type, match in components:
        if kind not in ENTITY_TYPES:
            raise QuotaError(f"unknown entity type {kind!r}")
        if match_type not in (MATCH_EXACT, MATCH_DEFAULT, MATCH_SPECIFIED):
            raise QuotaError(f"unknown match type {match_type!r}")
        if match_type == MATCH_EXACT and not match:
            raise QuotaError("an EXACT match needs a name")
        if kind in wanted:
            raise QuotaError(f"entity type {kind!r} filtered twice")
        wanted[kind] = (match_type, match)
    out = []
    for entity in sorted(quotas, key=repr):
        parts = dict(entity)
        if strict and set(parts) != set(wanted):
            continue
        ok = True
        for kind, (match_type, match) in wanted.items():
            if kind not in parts:
                ok = False
            elif match_type == MATCH_EXACT:
                ok = ok and parts[kind] == match
            elif match_type == MATCH_DEFAULT:
                ok = ok and parts[kind] is None
            else:
                ok = ok and parts[kind] is not None
        if ok:
            out.append((entity, dict(quotas[entity])))
    return out


# ----------------------------------------------------------------------------- resolution


@frozen
class Applied:
    """The quota that applies to a connection: its bound and the tags its usage is
    measured under (connections with the same tags share one rate)."""

    bound: float
    user_tag: str
    client_tag: str


def resolve(quotas: Quotas, user: str, client_id: str, key: str) -> Applied | None:
    """The quota ``key`` of ``user`` with ``client_id`` (Kafka's precedence), or None."""
    u, c, d = (USER, user), (CLIENT_ID, client_id), None
    chain = (
        (((CLIENT_ID, client_id), u), True, True),
        (((CLIENT_ID, d), u), True, True),
        ((u,), True, False),
        (((CLIENT_ID, client_id), (USER, d)), True, True),
        (((CLIENT_ID, d), (USER, d)), True, True),
        (((USER, d),), True, False),
        ((c,), False, True),
        (((CLIENT_ID, d),), False, True),
    )
    for entity, by_user, by_client in chain:
        values = quotas.get(entity)
        if values is not None and key in values:
            return Applied(values[key], user if by_user else "", client_id if by_client else "")
    return None


# ------------------------------------------------------------------------------- windows


@dataclass(slots=True)
class Rate:
    """Kafka's ``Rate`` over a ``SampledStat``: ``num`` samples of ``window_ms`` each.
    Not thread-safe: its owner locks."""

    num: int = 11
    window_ms: int = 1000
    samples: list[list[float]] = field(default_factory=list)  # [start_ms, total]
    current: int = 0

    def _purge(self, now_ms: float) -> None:
        expire_age = self.num * self.window_ms
        for s in self.samples:
            if now_ms - s[0] >= expire_age:
                s[0], s[1] = now_ms, 0.0

    def record(self, value: float, now_ms: float) -> None:
        if not self.samples:
            self.samples.append([now_ms, 0.0])
        sample = self.samples[self.current]
        if now_ms - sample[0] >= self.window_ms:  # complete: advance
            self.current = (self.current + 1) % self.num
            if self.current >= len(self.samples):
                self.samples.append([now_ms, 0.0])
            else:
                self.samples[self.current][:] = [now_ms, 0.0]
            sample = self.samples[self.current]
        sample[1] += value

    def window_size_ms(self, now_ms: float) -> float:
        self._purge(now_ms)
        oldest = min((s[0] for s in self.samples), default=now_ms)
        elapsed = now_ms - oldest
        full = int(elapsed // self.window_ms)
        if full < self.num - 1:
            elapsed += (self.num - 1 - full) * self.window_ms
        return elapsed

    def measure(self, now_ms: float) -> float:
        """Per second."""
        window = self.window_size_ms(now_ms)
        return sum(s[1] for s in self.samples) / (window / 1000.0)

    def throttle_ms(self, bound: float, now_ms: float, cap_ms: float | None = None) -> int:
        """How long the client must wait for the rate to come back to ``bound`` (0: within
        it); Kafka's QuotaUtils.throttleTime, capped at ``cap_ms`` if given."""
        rate = self.measure(now_ms)
        if rate <= bound:
            return 0
        ms = (rate - bound) / bound * self.window_size_ms(now_ms)
        if cap_ms is not None:
            ms = min(ms, cap_ms)
        return int(round(ms))


@dataclass(slots=True)
class Bucket:
    """A quota's token bucket (see the module docstring): ``num`` windows of ``window_ms``
    give the burst, ``(num - 1)`` windows of the quota. Not thread-safe: its owner locks."""

    num: int = 11
    window_ms: int = 1000
    bucket: TokenBucket = field(default_factory=TokenBucket)

    def burst(self, bound: float) -> float:
        return bound * max(1, self.num - 1) * self.window_ms / 1000

    def record(self, value: float, bound: float, now_ms: float,
               cap_ms: float | None = None) -> int:
        """Take ``value`` out of the bucket; the throttle (ms) it leaves (0: none), capped at
        ``cap_ms`` if given. A negative ``value`` gives back (up to the burst)."""
        self.bucket.record(value, bound, self.burst(bound), now_ms)
        tokens = self.bucket.tokens
        if tokens >= 0:
            return 0
        ms = -tokens / bound * 1000
        if cap_ms is not None:
            ms = min(ms, cap_ms)
        return int(round(ms))
