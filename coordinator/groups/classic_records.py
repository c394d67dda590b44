"""The classic groups' record in ``__consumer_offsets`` (see :mod:`.classic`).

One record per classic group, keyed by its id, holding the group's metadata as
:meth:`~.classic.ClassicGroup.to_record` gives it (Kafka's GroupMetadataValue: protocol
type and name, generation, leader, members with their protocols and assignments); written
after each generation and when the members change, a tombstone when the group is deleted.
The offsets of a classic group are ordinary offset_commit records of the group id (the same
path as KIP-848 groups). Replay keeps the last value of each group in
``CoordinatorState.classic``; the hosting actor rebuilds :class:`~.classic.ClassicGroup`
objects from it with ``ClassicGroup.from_record``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rillet.frozen import frozen

from .errors import InvalidRequestError

TYPE = "classic_group"
VERSION = 0


@frozen(kw_only=True)
class ClassicGroupRecord:
    group_id: str
    value: Mapping[str, Any] | None  # None: a tombstone (the group is gone)


RECORD_CLASSES = (ClassicGroupRecord,)
_FIELDS = ("protocol_type", "generation", "protocol", "leader", "members")


def to_kv(record: ClassicGroupRecord) -> tuple[dict[str, Any], dict[str, Any] | None]:
    key = {"type": TYPE, "group_id": record.group_id}
    if record.value is None:
        return key, None
    return key, {"version": VERSION, **{f: record.value[f] for f in _FIELDS}}


def from_kv(key: Mapping[str, Any], value: Mapping[str, Any] | None) -> ClassicGroupRecord:
    gid = key.get("group_id")
    if not isinstance(gid, str):
        raise InvalidRequestError("classic_group record without a group id")
    if value is None:
        return ClassicGroupRecord(group_id=gid, value=None)
    missing = [f for f in _FIELDS if f not in value]
    if missing or not isinstance(value["members"], list | tuple) or not isinstance(
            value["generation"], int):
        raise InvalidRequestError(f"malformed classic_group record of {gid!r}: {missing}")
    return ClassicGroupRecord(group_id=gid, value={f: value[f] for f in _FIELDS})


def apply(classic: Mapping[str, Mapping[str, Any]],
          records: Iterable[ClassicGroupRecord]) -> dict[str, Mapping[str, Any]]:
    out = dict(classic)
    for r in records:
        if r.value is None:
            out.pop(r.group_id, None)
        else:
            out[r.group_id] = dict(r.value)
    return out
