"""Feature levels: ``metadata.version`` (Kafka's KIP-584 / KIP-778). Pure.

A rolling upgrade runs old and new brokers side by side. An old broker cannot read metadata
records that were added after it was built (ACLs, SCRAM credentials, dynamic broker configs,
client quotas...), so the cluster must not write them until every broker can. Kafka's answer,
and rillet's:

* Every metadata record type is tagged with the ``metadata.version`` level that introduced it
  (``RECORD_LEVELS``; untagged types are level 1).
* Every broker reports the range of levels it can read in its heartbeat (and registration:
  ``RegisterBroker.metadata_version_min/max``).
* The controller keeps ONE finalized level in the metadata log (``FeatureLevelRecord``). It

  - refuses to finalize a level some registered broker cannot read (``update``),
  - refuses to register a broker that cannot read the finalized level (``check_broker``),
  - refuses any request whose records need a higher level than the finalized one
    (``check_records``: e.g. an ACL on a cluster still at level 1).

* A new cluster starts at the latest level (or ``bootstrap.metadata.version``); a log written
  before feature levels existed has no ``FeatureLevelRecord`` and counts as level 1.
* A broker that meets a record it cannot read (an unknown type, or one above its supported
  level) stops with a message naming the record and the level it needs (``UnreadableRecord``);
  it never skips it.

The levels (``METADATA_VERSIONS``):

====  =======================================================================================
1     brokers, topics, partitions, topic and group configs, producer ids, CURVE user keys
2     ACLs (``AccessControlEntryRecord``/``Remove...``), SCRAM credentials (``SetUserScram``)
3     dynamic broker configs (``SetBrokerConfig``), client quotas (``ClientQuotaRecord``)
====  =======================================================================================

Downgrades are refused (as Kafka's "unsafe" downgrade: the log may hold records the lower
level cannot read). Worked example: brokers 1 and 2 read 1-3, broker 3 reads 1-1 (not yet
upgraded), the cluster is at 1. ``update(image, 3)`` -> ``FeatureError`` "broker 3 supports
metadata.version 1-1"; an ACL add -> ``FeatureError`` "needs metadata.version 2". Broker 3
restarts with the new code (reads 1-3); ``update(image, 3)`` -> ``[FeatureLevelRecord(
name="metadata.version", level=3)]``; the ACL add is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rillet.frozen import frozen

METADATA_VERSION = "metadata.version"
MIN_LEVEL = 1

METADATA_VERSIONS: dict[int, str] = {
    1: "brokers, topics, partitions, topic and group configs, producer ids, user keys",
    2: "ACLs and SCRAM credentials",
    3: "dynamic broker configs and client quotas",
}
LATEST_LEVEL = max(METADATA_VERSIONS)

#: metadata record type name -> the level that introduced it (absent: level 1).
RECORD_LEVELS: dict[str, int] = {
    "AccessControlEntryRecord": 2,
    "RemoveAccessControlEntryRecord": 2,
    "SetUserScram": 2,
    "SetBrokerConfig": 3,
    "ClientQuotaRecord": 3,
}

#: what a record needs, in words (for the refusal of an admin request)
_WHAT = {
    "AccessControlEntryRecord": "ACLs",
    "RemoveAccessControlEntryRecord": "ACLs",
    "SetUserScram": "SCRAM credentials",
    "SetBrokerConfig": "dynamic broker configs",
    "ClientQuotaRecord": "client quotas",
}


@frozen(kw_only=True)
class FeatureLevelRecord:
    """The finalized level of feature ``name`` (Kafka's FeatureLevelRecord); level 1 itself,
    so every broker that knows feature levels can read it."""

    name: str
    level: int


class FeatureError(Exception):
    """A feature rule refuses. ``kind``: the Kafka error name for the wire."""

    def __init__(self, message: str, kind: str = "INVALID_UPDATE_VERSION") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class UnreadableRecord(ValueError):
    """A metadata record this broker cannot read: the broker must stop, never skip it."""


def level_of(record_type: str) -> int:
    return RECORD_LEVELS.get(record_type, MIN_LEVEL)


def finalized(features: Mapping[str, int]) -> int:
    """The cluster's ``metadata.version``: level 1 while none is finalized (a log written
    before feature levels existed)."""
    return features.get(METADATA_VERSION, MIN_LEVEL)


def bootstrap_level(requested: int, supported_max: int) -> int:
    """The level a new cluster starts at: ``requested`` (0: the latest) within what the
    first controller supports."""
    want = LATEST_LEVEL if requested <= 0 else requested
    if not MIN_LEVEL <= want <= LATEST_LEVEL:
        raise FeatureError(
            f"bootstrap.metadata.version {requested} is not a known level "
            f"({MIN_LEVEL}-{LATEST_LEVEL})"
        )
    return min(want, supported_max)


def check_broker(level: int, broker_id: int, supported: tuple[int, int]) -> None:
    """Refuse to register a broker that cannot read the finalized ``level``."""
    lo, hi = supported
    if not lo <= level <= hi:
        raise FeatureError(
            f"broker {broker_id} supports metadata.version {lo}-{hi} but the cluster is at "
            f"{level}: run a broker version that reads level {level}",
            kind="UNSUPPORTED_VERSION",
        )


def update(
    current: int,
    level: int,
    brokers: Iterable[tuple[int, tuple[int, int]]],
    *,
    controller_max: int = LATEST_LEVEL,
) -> list[FeatureLevelRecord]:
    """Records finalizing ``metadata.version`` at ``level`` (none if already there), or a
    ``FeatureError``. ``brokers``: every registered broker's ``(id, (min, max))``;
    ``controller_max``: the highest level the deciding controller knows."""
    def unknown(top: int) -> FeatureError:
        return FeatureError(
            f"metadata.version {level} is not a level this controller knows ({MIN_LEVEL}-{top})")

    if not MIN_LEVEL <= level <= LATEST_LEVEL:
        raise unknown(LATEST_LEVEL)
    if level < current:
        raise FeatureError(
            f"metadata.version {current} -> {level} is a downgrade: refused (the metadata "
            "log may hold records the lower level cannot read)"
        )
    # the brokers first: an old-release controller is a registered broker too, and the
    # operator's answer is the same (upgrade it), whichever broker happens to lead the quorum
    unable = [(b, r) for b, r in sorted(brokers) if not r[0] <= level <= r[1]]
    if unable:
        text = ", ".join(f"broker {b} supports {lo}-{hi}" for b, (lo, hi) in unable)
        raise FeatureError(
            f"cannot finalize metadata.version {level}: {text}; upgrade those brokers first"
        )
    if level > controller_max:
        raise unknown(min(LATEST_LEVEL, controller_max))
    if level == current:
        return []
    return [FeatureLevelRecord(name=METADATA_VERSION, level=level)]


def check_records(level: int, records: Iterable[object]) -> None:
    """Refuse records a cluster at ``level`` may not write yet (``UNSUPPORTED_VERSION``)."""
    for r in records:
        name = type(r).__name__
        need = level_of(name)
        if need > level:
            what = _WHAT.get(name, name)
            raise FeatureError(
                f"{what} need metadata.version {need} ({name}) but the cluster is at {level}: "
                f"finish the upgrade first (rillet features upgrade --metadata-version {need})",
                kind="UNSUPPORTED_VERSION",
            )


def check_readable(type_name: str, known: bool, supported_max: int) -> None:
    """A broker that reads levels up to ``supported_max`` meets a record of ``type_name``
    (``known``: its code has that type): ``UnreadableRecord`` if it cannot read it."""
    if not known:
        raise UnreadableRecord(
            f"unknown metadata record type {type_name!r}: it was written by a newer broker "
            "(a higher metadata.version than this broker knows); upgrade this broker"
        )
    need = level_of(type_name)
    if need > supported_max:
        raise UnreadableRecord(
            f"metadata record {type_name} needs metadata.version {need}; this broker reads "
            f"up to {supported_max}; upgrade this broker"
        )
