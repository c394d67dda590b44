"""ACL bindings kept in the metadata log (docs/security.md, "Authorization"). Pure.

Two records, Kafka's (KRaft's ``AccessControlEntryRecord`` / ``RemoveAccessControlEntryRecord``),
each carrying one whole binding (coordinator/acl.py's ``AclBinding`` fields):

* ``AccessControlEntryRecord``: the binding exists from this record on;
* ``RemoveAccessControlEntryRecord``: it is gone.

The metadata image keeps the set of bindings (``MetadataImage.acls``, a frozenset: adding a
binding twice keeps one, removing an absent one changes nothing, so replay never fails).
Every broker replays the same log, so every broker's authorizer sees the same bindings once
it has applied the records; a full cluster restart replays them back (or reads them from a
metadata snapshot: ``snapshot_records``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .acl import AclBinding

_rec = dataclass(frozen=True, slots=True, kw_only=True)


@_rec
class AccessControlEntryRecord:
    """Binding added: ``principal`` from ``host`` is ``permission``ed ``operation`` on
    resources of ``resource_type`` matching ``(pattern_type, resource_name)``."""

    resource_type: str
    resource_name: str
    pattern_type: str
    principal: str
    host: str
    operation: str
    permission: str


@_rec
class RemoveAccessControlEntryRecord:
    """Binding removed (the same fields as the record that added it)."""

    resource_type: str
    resource_name: str
    pattern_type: str
    principal: str
    host: str
    operation: str
    permission: str


ACL_RECORDS = (AccessControlEntryRecord, RemoveAccessControlEntryRecord)


def binding_of(record: AccessControlEntryRecord | RemoveAccessControlEntryRecord) -> AclBinding:
    return AclBinding(**asdict(record))


def add_record(b: AclBinding) -> AccessControlEntryRecord:
    return AccessControlEntryRecord(**_fields(b))


def remove_record(b: AclBinding) -> RemoveAccessControlEntryRecord:
    return RemoveAccessControlEntryRecord(**_fields(b))


def _fields(b: AclBinding) -> dict:
    return {
        "resource_type": b.resource_type, "resource_name": b.resource_name,
        "pattern_type": b.pattern_type, "principal": b.principal, "host": b.host,
        "operation": b.operation, "permission": b.permission,
    }


def apply_acl_record(acls: frozenset[AclBinding], record: object) -> frozenset[AclBinding]:
    """The bindings after ``record`` (one of ``ACL_RECORDS``)."""
    b = binding_of(record)
    if isinstance(record, AccessControlEntryRecord):
        return acls | {b}
    return acls - {b}


def snapshot_records(acls: Iterable[AclBinding]) -> list[AccessControlEntryRecord]:
    """Records rebuilding ``acls`` from none, in a stable order (a metadata snapshot)."""
    return [add_record(b) for b in sorted(acls, key=lambda b: tuple(_fields(b).values()))]
