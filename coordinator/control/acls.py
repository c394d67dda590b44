"""ACL admin: create, describe and delete ACL bindings (Kafka's CreateAcls, DescribeAcls,
DeleteAcls), as pure functions over the metadata image.

Items are decided in request order. A malformed binding or filter gets INVALID_REQUEST and
changes nothing; creating a binding that exists already succeeds without a record (Kafka:
idempotent); DeleteAcls removes every binding any of its filters matches, each once, and
each filter's answer lists the bindings it matched.

Worked example: the image holds ``ALLOW User:alice READ TOPIC PREFIXED "orders"`` and
``ALLOW User:bob READ TOPIC LITERAL "orders-eu"``. DeleteAcls with the filter
``(TOPIC, "orders-eu", MATCH)`` matches both (the prefixed one applies to ``orders-eu``) and
commits two ``RemoveAccessControlEntryRecord``; the filter ``(TOPIC, "orders-eu", LITERAL)``
matches only bob's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from rillet.coordinator import acl, acl_store
from rillet.coordinator import metadata as md

from rillet.frozen import frozen

from .result import OK, ControllerResult, Note

_FILTER_PATTERNS = ("ANY", "LITERAL", "PREFIXED", "MATCH")


class BindingFields(Protocol):
    resource_type: str
    resource_name: str
    pattern_type: str
    principal: str
    host: str
    operation: str
    permission: str


class FilterFields(Protocol):
    resource_type: str
    resource_name: str | None
    pattern_type: str
    principal: str | None
    host: str | None
    operation: str
    permission: str


@frozen
class AclOutcome:
    """One creation, or one filter of a deletion (``bindings``: what it matched)."""

    error: str = OK
    message: str | None = None
    bindings: tuple[acl.AclBinding, ...] = ()


def binding(b: BindingFields) -> acl.AclBinding:
    """A validated ``AclBinding`` of wire fields; ``acl.AclError`` if malformed."""
    out = acl.validate(acl.AclBinding(
        resource_type=b.resource_type, resource_name=b.resource_name,
        pattern_type=b.pattern_type, principal=b.principal, host=b.host,
        operation=b.operation, permission=b.permission))
    if out.resource_type == "CLUSTER" and (
            out.pattern_type, out.resource_name) != ("LITERAL", acl.CLUSTER_NAME):
        raise acl.AclError(f"the CLUSTER resource is LITERAL {acl.CLUSTER_NAME!r}")
    return out


def acl_filter(f: FilterFields) -> acl.AclFilter:
    """A validated ``AclFilter`` of wire fields; ``acl.AclError`` if malformed."""
    for name, value, allowed in (
        ("resource_type", f.resource_type, acl.RESOURCE_TYPES),
        ("pattern_type", f.pattern_type, _FILTER_PATTERNS[1:]),
        ("operation", f.operation, acl.OPERATIONS),
        ("permission", f.permission, acl.PERMISSIONS),
    ):
        if value not in ("ANY", *allowed):
            raise acl.AclError(f"{name} {value!r}; valid values: ANY, {', '.join(allowed)}")
    return acl.AclFilter(
        resource_type=f.resource_type, resource_name=f.resource_name,
        pattern_type=f.pattern_type, principal=f.principal, host=f.host,
        operation=f.operation, permission=f.permission)


def _sorted(bindings: Iterable[acl.AclBinding]) -> tuple[acl.AclBinding, ...]:
    return tuple(sorted(bindings, key=lambda b: (
        b.resource_type, b.resource_name, b.pattern_type, b.principal, b.host, b.operation,
        b.permission)))


def create_acls(
    image: md.MetadataImage, creations: Iterable[BindingFields]
) -> ControllerResult[list[AclOutcome]]:
    results: list[AclOutcome] = []
    records: list[object] = []
    present = set(image.acls)
    for c in creations:
        try:
            b = binding(c)
        except acl.AclError as e:
            results.append(AclOutcome("INVALID_REQUEST", str(e)))
            continue
        if b not in present:
            present.add(b)
            records.append(acl_store.add_record(b))
        results.append(AclOutcome(bindings=(b,)))
    notes = tuple(Note("info", f"ACL added: {_text(acl_store.binding_of(r))}") for r in records)
    return ControllerResult(records, results, notes)


def describe_acls(image: md.MetadataImage, f: FilterFields) -> AclOutcome:
    """The bindings ``f`` matches (no records: any broker answers from its image)."""
    try:
        flt = acl_filter(f)
    except acl.AclError as e:
        return AclOutcome("INVALID_REQUEST", str(e))
    return AclOutcome(bindings=_sorted(b for b in image.acls if flt.matches(b)))


def delete_acls(
    image: md.MetadataImage, filters: Iterable[FilterFields]
) -> ControllerResult[list[AclOutcome]]:
    results: list[AclOutcome] = []
    removed: set[acl.AclBinding] = set()
    for f in filters:
        try:
            flt = acl_filter(f)
        except acl.AclError as e:
            results.append(AclOutcome("INVALID_REQUEST", str(e)))
            continue
        matched = _sorted(b for b in image.acls if flt.matches(b))
        removed.update(matched)
        results.append(AclOutcome(bindings=matched))
    gone = _sorted(removed)
    records: list[object] = [acl_store.remove_record(b) for b in gone]
    notes = tuple(Note("info", f"ACL removed: {_text(b)}") for b in gone)
    return ControllerResult(records, results, notes)


def _text(b: acl.AclBinding) -> str:
    return (f"{b.permission} {b.principal} from {b.host} {b.operation} on {b.resource_type} "
            f"{b.pattern_type} {b.resource_name!r}")
