"""Plain-data forms of Raft messages and of the hard state, for transports and files.

``message_to_dict`` gives a dict of ints, bools, bytes and lists (ready for CBOR, which this
package may not import); ``message_from_dict`` is its strict inverse: exact keys, exact types
(``bool`` is not an int here), else ``InvalidMessageError``. Nothing a peer sends can crash
the decoder. ``encode_hard_state`` / ``decode_hard_state`` are the bytes of Kafka's
``quorum-state`` file (JSON, versioned).

    {"type": "AppendEntriesRequest", "src": 1, "dst": 2, "term": 3, "prev_log_index": 7,
     "prev_log_term": 2, "entries": [[3, b"...", False]], "leader_commit": 7}
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from .errors import InvalidMessageError
from .log import LogEntry, Snapshot
from .messages import MESSAGE_TYPES, RaftMessage
from .node import HardState

_BY_NAME = {cls.__name__: cls for cls in MESSAGE_TYPES}
_FIELDS = {cls: {f.name: f.type for f in dataclasses.fields(cls)} for cls in MESSAGE_TYPES}
MAX_ENTRIES = 1 << 16  # far above any max_entries_per_request


def message_to_dict(message: RaftMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(message).__name__}
    for name in _FIELDS[type(message)]:
        value = getattr(message, name)
        if name == "entries":
            value = [[e.term, e.payload, e.control] for e in value]
        elif name == "snapshot":
            value = [value.index, value.term, value.data]
        out[name] = value
    return out


def _int(data: dict, name: str, raw: Any) -> int:
    if type(raw) is not int or raw < 0 or raw >= 1 << 63:
        raise InvalidMessageError(data, f"{name} must be a non-negative int64")
    return raw


def _bool(data: dict, name: str, raw: Any) -> bool:
    if type(raw) is not bool:
        raise InvalidMessageError(data, f"{name} must be a bool")
    return raw


def _bytes(data: dict, name: str, raw: Any) -> bytes:
    if not isinstance(raw, bytes | bytearray):
        raise InvalidMessageError(data, f"{name} must be bytes")
    return bytes(raw)


def _entries(data: dict, raw: Any) -> tuple[LogEntry, ...]:
    if not isinstance(raw, list | tuple) or len(raw) > MAX_ENTRIES:
        raise InvalidMessageError(data, "entries must be a list")
    out = []
    for item in raw:
        if not isinstance(item, list | tuple) or len(item) != 3:
            raise InvalidMessageError(data, "an entry must be [term, payload, control]")
        out.append(
            LogEntry(
                _int(data, "entry term", item[0]),
                _bytes(data, "entry payload", item[1]),
                _bool(data, "entry control", item[2]),
            )
        )
    return tuple(out)


def _snapshot(data: dict, raw: Any) -> Snapshot:
    if not isinstance(raw, list | tuple) or len(raw) != 3:
        raise InvalidMessageError(data, "snapshot must be [index, term, data]")
    return Snapshot(
        _int(data, "snapshot index", raw[0]),
        _int(data, "snapshot term", raw[1]),
        _bytes(data, "snapshot data", raw[2]),
    )


def message_from_dict(data: Any) -> RaftMessage:
    """The message ``data`` describes, or ``InvalidMessageError``."""
    if not isinstance(data, dict):
        raise InvalidMessageError(data, "not a map")
    kind = data.get("type")
    cls = _BY_NAME.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise InvalidMessageError(data, "unknown message type")
    fields = _FIELDS[cls]
    if set(data) != {"type", *fields}:
        raise InvalidMessageError(data, f"fields must be exactly {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name in fields:
        raw = data[name]
        if name == "entries":
            kwargs[name] = _entries(data, raw)
        elif name == "snapshot":
            kwargs[name] = _snapshot(data, raw)
        elif name in ("pre_vote", "granted", "success"):
            kwargs[name] = _bool(data, name, raw)
        else:
            kwargs[name] = _int(data, name, raw)
    return cls(**kwargs)


def encode_hard_state(state: HardState) -> bytes:
    return json.dumps({"version": 1, "term": state.term, "voted_for": state.voted_for}).encode()


def decode_hard_state(data: bytes) -> HardState:
    """Parse ``encode_hard_state`` output; ValueError if it is not one."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt raft hard state: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("version") != 1:
        raise ValueError(f"unsupported raft hard state: {obj!r:.200}")
    term, voted = obj.get("term"), obj.get("voted_for")
    if type(term) is not int or term < 0 or not (voted is None or type(voted) is int):
        raise ValueError(f"corrupt raft hard state: {obj!r:.200}")
    return HardState(term, voted)
