"""The authorizer: Kafka's ACL model as a pure function (docs/security.md).

An ``AclBinding`` says: ``principal`` (``User:NAME`` or ``User:*``) from ``host`` (an
address or ``*``) is ALLOWed or DENYed ``operation`` on resources of ``resource_type``
whose name matches ``(pattern_type, resource_name)``:

* LITERAL ``name``: exactly that resource; LITERAL ``*``: every resource of the type;
* PREFIXED ``name``: every resource whose name starts with ``name``.

``authorize(acls, request, super_users, allow_if_no_acl)`` decides, as Kafka's
StandardAuthorizer does:

1. a principal of ``super.users`` is allowed everything;
2. a matching DENY for the operation (or ALL) denies: DENY wins;
3. no ACL at all matches the resource (whoever it names): ``allow.everyone.if.no.acl.found``;
4. a matching ALLOW of the operation, of ALL, or of an operation implying it allows:
   READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS;
5. otherwise denied.

A DENY never implies: DENY READ does not deny DESCRIBE. Worked example: with
``ALLOW User:alice READ TOPIC PREFIXED "orders"`` and ``DENY User:* READ TOPIC LITERAL
"orders-secret"``, alice may READ and DESCRIBE ``orders-eu``, may DESCRIBE but not READ
``orders-secret``, and may do nothing on ``payments`` unless no ACL names ``payments`` and
``allow.everyone.if.no.acl.found`` is true.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable

from rillet.frozen import frozen

RESOURCE_TYPES = ("TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID")
PATTERN_TYPES = ("LITERAL", "PREFIXED")
PERMISSIONS = ("ALLOW", "DENY")
OPERATIONS = (
    "ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE",
)
WILDCARD = "*"
CLUSTER_NAME = "kafka-cluster"  # Kafka's name of the one CLUSTER resource

# operation -> the operations whose ALLOW also allows it (besides itself and ALL)
IMPLIED_BY = {
    "DESCRIBE": frozenset({"READ", "WRITE", "DELETE", "ALTER"}),
    "DESCRIBE_CONFIGS": frozenset({"ALTER_CONFIGS"}),
}


class AclError(ValueError):
    """A malformed ACL binding or filter (INVALID_REQUEST on the wire)."""


@frozen(kw_only=True)
class AclBinding:
    resource_type: str
    resource_name: str
    pattern_type: str
    principal: str
    host: str
    operation: str
    permission: str


@frozen(kw_only=True)
class Request:
    """Who asks for what: ``principal`` from ``host`` wants ``operation`` on a resource."""

    principal: str
    host: str
    operation: str
    resource_type: str
    resource_name: str


def validate(b: AclBinding) -> AclBinding:
    """``b`` if well-formed; ``AclError`` naming the bad field otherwise."""
    for field, value, allowed in (
        ("resource_type", b.resource_type, RESOURCE_TYPES),
        ("pattern_type", b.pattern_type, PATTERN_TYPES),
        ("operation", b.operation, OPERATIONS),
        ("permission", b.permission, PERMISSIONS),
    ):
        if value not in allowed:
            raise AclError(f"{field} {value!r}; valid values: {', '.join(allowed)}")
    if not b.resource_name:
        raise AclError("resource_name must not be empty")
    if b.pattern_type == "PREFIXED" and b.resource_name == WILDCARD:
        raise AclError("a PREFIXED pattern cannot be '*' (use LITERAL '*')")
    kind, sep, name = b.principal.partition(":")
    if not sep or not kind or not name:
        raise AclError(f"principal {b.principal!r} is not TYPE:NAME (e.g. User:alice)")
    if not b.host:
        raise AclError("host must not be empty ('*' for any)")
    return b


def _resource_matches(b: AclBinding, resource_type: str, name: str) -> bool:
    if b.resource_type != resource_type:
        return False
    if b.pattern_type == "LITERAL":
        return b.resource_name in (name, WILDCARD)
    return name.startswith(b.resource_name)


def _who_matches(b: AclBinding, principal: str, host: str) -> bool:
    kind = principal.partition(":")[0]
    return b.principal in (principal, f"{kind}:{WILDCARD}") and b.host in (host, WILDCARD)


def authorize(
    acls: Iterable[AclBinding],
    request: Request,
    super_users: frozenset[str] = frozenset(),
    allow_if_no_acl: bool = False,
) -> bool:
    """Whether ``request`` is allowed (see the module docstring)."""
    if request.principal in super_users:
        return True
    on_resource = [
        b for b in acls if _resource_matches(b, request.resource_type, request.resource_name)
    ]
    return _decide(on_resource, request, allow_if_no_acl)


def _decide(on_resource: list[AclBinding], request: Request, allow_if_no_acl: bool) -> bool:
    """Steps 2-5 of the module docstring, over the bindings that match the resource."""
    mine = [b for b in on_resource if _who_matches(b, request.principal, request.host)]
    op = request.operation
    if any(b.permission == "DENY" and b.operation in (op, "ALL") for b in mine):
        return False
    if not on_resource:
        return allow_if_no_acl
    implied = IMPLIED_BY.get(op, frozenset())
    return any(
        b.permission == "ALLOW" and (b.operation in (op, "ALL") or b.operation in implied)
        for b in mine
    )


class AclIndex:
    """The bindings of ``acls`` by resource, so that a check visits only those that can
    match it (the literal name, ``*`` and the prefixes of the name) instead of all of them,
    as Kafka's StandardAuthorizer keeps them sorted by resource. ``authorize`` decides
    exactly as the module function does (tests/unit/coordinator/test_acl.py). Immutable once
    built: share it across threads."""

    __slots__ = ("_literal", "_prefixed", "_lengths")

    def __init__(self, acls: Iterable[AclBinding]) -> None:
        literal: dict[tuple[str, str], list[AclBinding]] = {}
        prefixed: dict[tuple[str, str], list[AclBinding]] = {}
        lengths: dict[str, set[int]] = {}
        for b in acls:
            key = (b.resource_type, b.resource_name)
            if b.pattern_type == "LITERAL":
                literal.setdefault(key, []).append(b)
            else:
                prefixed.setdefault(key, []).append(b)
                lengths.setdefault(b.resource_type, set()).add(len(b.resource_name))
        self._literal = literal
        self._prefixed = prefixed
        self._lengths = {t: sorted(n) for t, n in lengths.items()}

    def matching(self, resource_type: str, name: str) -> list[AclBinding]:
        """The bindings whose pattern matches the resource ``(resource_type, name)``."""
        out = list(self._literal.get((resource_type, name), ()))
        if name != WILDCARD:
            out += self._literal.get((resource_type, WILDCARD), ())
        for n in self._lengths.get(resource_type, ()):
            if n > len(name):
                break
            out += self._prefixed.get((resource_type, name[:n]), ())
        return out

    def authorize(
        self,
        request: Request,
        super_users: frozenset[str] = frozenset(),
        allow_if_no_acl: bool = False,
    ) -> bool:
        if request.principal in super_users:
            return True
        on_resource = self.matching(request.resource_type, request.resource_name)
        return _decide(on_resource, request, allow_if_no_acl)


@frozen(kw_only=True)
class AclFilter:
    """Kafka's AclBindingFilter: ``None`` (or ANY) matches every value of a field; pattern
    ``MATCH`` selects the bindings that would apply to the literal resource name."""

    resource_type: str | None = None
    resource_name: str | None = None
    pattern_type: str | None = None  # None/ANY, LITERAL, PREFIXED or MATCH
    principal: str | None = None
    host: str | None = None
    operation: str | None = None
    permission: str | None = None

    def matches(self, b: AclBinding) -> bool:
        def eq(want, have) -> bool:
            return want in (None, "ANY") or want == have

        if not (eq(self.resource_type, b.resource_type) and eq(self.principal, b.principal)
                and eq(self.host, b.host) and eq(self.operation, b.operation)
                and eq(self.permission, b.permission)):
            return False
        if self.pattern_type == "MATCH":
            return self.resource_name is None or _resource_matches(
                b, b.resource_type, self.resource_name)
        return eq(self.pattern_type, b.pattern_type) and eq(self.resource_name, b.resource_name)


def parse_super_users(value: str) -> frozenset[str]:
    """``super.users``: ``User:a;User:b`` (Kafka separates them with ';')."""
    return frozenset(filter(None, (u.strip() for u in value.split(";"))))
