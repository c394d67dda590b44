"""Admin methods of ACLs (docs/security.md, "Authorization"), mixed into ``rillet.Admin``.

    from rillet import AclBinding, AclBindingFilter
    admin.create_acls([AclBinding("TOPIC", "orders", "User:alice", "WRITE",
                                  pattern_type="PREFIXED")])
    admin.describe_acls(AclBindingFilter(principal="User:alice"))   # [AclBinding, ...]
    admin.delete_acls([AclBindingFilter(resource_type="TOPIC", resource_name="orders",
                                        pattern_type="MATCH")])     # [[removed...]]

Create and delete go to the active controller, which commits them to the metadata log
(replicated, kept across restarts); every broker enforces them once applied. Values are
Kafka's names (upper case; lower case is accepted). Errors: ``SecurityDisabledError`` (the
cluster runs no authorizer), ``ClusterAuthorizationFailedError`` (the caller may not manage
ACLs: ALTER on the CLUSTER, DESCRIBE to list), ``InvalidRequestError`` (a malformed binding).
"""

from __future__ import annotations

from collections.abc import Iterable

from rillet.errors import error_for_code
from rillet.frozen import frozen
from rillet.transport import protocol as p


@frozen
class AclBinding:
    """``principal`` (``User:NAME``, ``User:*``) from ``host`` is ``permission``
    (ALLOW/DENY) to ``operation`` on resources of ``resource_type`` (TOPIC, GROUP, CLUSTER,
    TRANSACTIONAL_ID) named by ``(pattern_type, resource_name)`` (LITERAL, or PREFIXED;
    LITERAL ``*`` is every resource; the CLUSTER is LITERAL ``kafka-cluster``)."""

    resource_type: str
    resource_name: str
    principal: str
    operation: str
    permission: str = "ALLOW"
    pattern_type: str = "LITERAL"
    host: str = "*"


@frozen
class AclBindingFilter:
    """Selects bindings: ``None``/``"ANY"`` matches anything; ``pattern_type="MATCH"``
    selects every binding that applies to the literal ``resource_name`` (the literal one,
    ``*`` and the matching prefixes)."""

    resource_type: str = "ANY"
    resource_name: str | None = None
    pattern_type: str = "ANY"
    principal: str | None = None
    host: str | None = None
    operation: str = "ANY"
    permission: str = "ANY"


def _up(value: str | None) -> str | None:
    return value.upper() if isinstance(value, str) else value


def _entry(b: AclBinding) -> p.AclEntry:
    return p.AclEntry(resource_type=_up(b.resource_type), resource_name=b.resource_name,
                      pattern_type=_up(b.pattern_type), principal=b.principal, host=b.host,
                      operation=_up(b.operation), permission=_up(b.permission))


def _filter(f: AclBindingFilter) -> p.AclFilterEntry:
    return p.AclFilterEntry(resource_type=_up(f.resource_type or "ANY"),
                            resource_name=f.resource_name,
                            pattern_type=_up(f.pattern_type or "ANY"), principal=f.principal,
                            host=f.host, operation=_up(f.operation or "ANY"),
                            permission=_up(f.permission or "ANY"))


def _binding(e: p.AclEntry) -> AclBinding:
    return AclBinding(e.resource_type, e.resource_name, e.principal, e.operation,
                      e.permission, e.pattern_type, e.host)


def _check(code: int, message: str | None) -> None:
    if code:
        raise error_for_code(code, message)


class AclAdminMixin:
    def create_acls(self, bindings: Iterable[AclBinding]) -> None:
        """Add the bindings (one that exists already is kept once). Each valid binding is
        added even if another is malformed; then the first error is raised."""
        req = p.CreateAclsRequest(creations=tuple(map(_entry, bindings)))
        resp = self._controller_call(req, self.config.request_timeout_ms,
                                     lambda r: [x.error_code for x in r.results])
        for r in resp.results:
            _check(r.error_code, r.error_message)

    def describe_acls(self, acl_filter: AclBindingFilter | None = None) -> list[AclBinding]:
        """The bindings ``acl_filter`` (default: all) matches, sorted. Asked of the active
        controller, which has applied every ACL change it acknowledged."""
        req = p.DescribeAclsRequest(filter=_filter(acl_filter or AclBindingFilter()))
        resp = self._client.call_controller(req, self.config.request_timeout_ms)
        _check(resp.error_code, resp.error_message)
        return [_binding(e) for e in resp.bindings]

    def delete_acls(self, filters: Iterable[AclBindingFilter]) -> list[list[AclBinding]]:
        """Remove every binding a filter matches; for each filter, the bindings it matched."""
        req = p.DeleteAclsRequest(filters=tuple(map(_filter, filters)))
        resp = self._controller_call(req, self.config.request_timeout_ms,
                                     lambda r: [x.error_code for x in r.filter_results])
        out = []
        for r in resp.filter_results:
            _check(r.error_code, r.error_message)
            out.append([_binding(e) for e in r.matching_acls])
        return out
