"""Authorization of client requests in the session, before any work (docs/security.md).

With ``authorizer.class.name`` set, every request that arrives on the CLIENT listener is
checked against the ACLs of the broker's metadata image (coordinator/acl.py decides) for
the connection's principal: the ZAP User-Id of a CURVE connection (``User:NAME``,
transport/security.py), ``User:ANONYMOUS`` on a plaintext one; the host is the peer's IP
address. Requests on the inter-broker listener are brokers' own (forwarded admin requests
were checked where the client sent them; inter-broker APIs are refused on the client
listener with CLUSTER_AUTHORIZATION_FAILED whatever the ACLs say): they are not checked.

``gate(auth, who, request, respond)`` returns what the session dispatches:

* ``(request, respond)`` unchanged when everything is allowed;
* ``(None, respond)`` after answering a refused request (the session dispatches nothing);
* ``(part, respond2)``: the allowed part of a request about several resources (Produce,
  Fetch, Metadata, CreateTopics, configs, ...), whose answer ``respond2`` completes with
  the refused items' errors, so a denied produce appends nothing to the partitions it names
  while the others are written.

Which operation each request needs (Kafka's table, rules in actors/authorize_rules.py):
Produce WRITE on the topic (and WRITE on the TRANSACTIONAL_ID of a transactional one);
Fetch READ; ListOffsets, OffsetForLeaderEpoch, Metadata DESCRIBE (a topic the principal may
not describe is left out of an all-topics Metadata answer and named with
TOPIC_AUTHORIZATION_FAILED when asked for, existing or not, so names do not leak);
CreateTopics CREATE on the CLUSTER or the topic; DeleteTopics DELETE; CreatePartitions ALTER;
DescribeConfigs / AlterConfigs DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic, group or
cluster (a user's key: ALTER on the CLUSTER); group requests READ on the GROUP (commits also
READ on the topics; describes DESCRIBE; deletes DELETE); transactions WRITE on the
TRANSACTIONAL_ID; InitProducerId of an idempotent producer IDEMPOTENT_WRITE on the CLUSTER
or an ALLOW of WRITE on some topic (KIP-679); ACL requests, elections, reassignments ALTER
on the CLUSTER (DescribeAcls, BrokerStats, BrokerCounters DESCRIBE). An API without a rule
needs ALTER on the CLUSTER.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import fields

from loguru import logger
from rillet.coordinator import acl
from rillet.transport import protocol as P

from rillet.frozen import frozen

from . import acl_wire

E = P.ErrorCode
ANONYMOUS = "User:ANONYMOUS"
CLUSTER = ("CLUSTER", acl.CLUSTER_NAME)


@frozen
class Authorizer:
    """The broker's authorizer settings (validated broker configs)."""

    enabled: bool
    super_users: frozenset[str] = frozenset()
    allow_if_no_acl: bool = False


@functools.lru_cache(maxsize=8)
def _authorizer(name: str, super_users: str, allow: str) -> Authorizer:
    return Authorizer(bool(name), acl.parse_super_users(super_users), allow == "true")


def authorizer_of(configs: Mapping[str, str]) -> Authorizer:
    """The authorizer of these broker configs (a plain mapping without the keys: off)."""
    return _authorizer(
        configs.get("authorizer.class.name", ""),
        configs.get("super.users", ""),
        configs.get("allow.everyone.if.no.acl.found", "false"),
    )


@functools.lru_cache(maxsize=4)
def index_of(acls: frozenset) -> acl.AclIndex:
    """The index of an image's bindings, built once per ACL change (the image's frozenset
    is the key: it hashes once and is compared by identity first)."""
    return acl.AclIndex(acls)


@frozen
class Who:
    """The principal and host of a request, and the ACLs it is judged by."""

    principal: str
    host: str
    acls: frozenset
    auth: Authorizer

    def may(self, operation: str, resource_type: str, name: str) -> bool:
        return index_of(self.acls).authorize(
            acl.Request(principal=self.principal, host=self.host, operation=operation,
                        resource_type=resource_type, resource_name=name),
            self.auth.super_users,
            self.auth.allow_if_no_acl,
        )

    def may_cluster(self, operation: str) -> bool:
        return self.may(operation, *CLUSTER)

    def may_write_some_topic(self) -> bool:
        """KIP-679's idempotent-producer rule: an ALLOW of WRITE (or ALL) on some topic for
        this principal and host, not cancelled by a DENY of every topic."""
        if self.principal in self.auth.super_users:
            return True
        if self.auth.allow_if_no_acl and not any(b.resource_type == "TOPIC" for b in self.acls):
            return True
        kind = self.principal.partition(":")[0]

        def mine(b) -> bool:
            return (b.resource_type == "TOPIC" and b.operation in ("WRITE", "ALL")
                    and b.principal in (self.principal, f"{kind}:*")
                    and b.host in (self.host, "*"))

        if any(mine(b) and b.permission == "DENY" and b.pattern_type == "LITERAL"
               and b.resource_name == acl.WILDCARD for b in self.acls):
            return False
        return any(mine(b) and b.permission == "ALLOW" for b in self.acls)


def who(ctx, user_id: str | None, host: str | None) -> Who:
    """The ``Who`` of a request on the client listener of the broker ``ctx``."""
    return Who(user_id or ANONYMOUS, host or "*", ctx.image.acls,
               authorizer_of(ctx.broker_configs))


# ------------------------------------------------------------------------------ verdicts


@frozen
class Deny:
    """Refuse the whole request with ``code``."""

    code: int
    message: str


@frozen
class Part:
    """Dispatch ``request`` (the allowed part); ``merge(response)`` adds the refused items
    (it must pass an ErrorResponse through unchanged). ``empty``: nothing is allowed and
    the request goes to the controller: answer ``merge(empty response)`` at once.
    ``refused``: some item is refused (False: the merge only leaves out what the principal
    may not see, as Metadata of all topics does)."""

    request: object
    merge: Callable[[object], object]
    empty: bool = False
    refused: bool = True


Verdict = Deny | Part | None  # None: allowed


def gate(w: Who, req: object, respond: Callable[[object], None],
         denied: Callable[[], None] | None = None):
    """(request to dispatch or None, respond): see the module docstring. ``denied()`` is
    called once for a request refused in whole or in part (the broker's counter)."""
    from .authorize_rules import RULES, default_rule

    rule = RULES.get(type(req), default_rule)
    verdict = rule(w, req)
    if verdict is None:
        return req, respond
    if denied is not None and (isinstance(verdict, Deny) or verdict.refused):
        denied()
    if isinstance(verdict, Deny):
        logger.debug("{} denied {}: {}", w.principal, req.API, verdict.message)
        respond(refusal(req, verdict.code, verdict.message))
        return None, respond
    merge = verdict.merge

    def respond_merged(response: object) -> None:
        respond(merge(response))

    if verdict.empty:
        respond_merged(P.RESPONSES[req.API]())
        return None, respond
    return verdict.request, respond_merged


def refusal(req: object, code: int, message: str) -> object:
    """The typed answer refusing all of ``req`` with ``code``: its response type when that
    has a top-level ``error_code`` (group, transaction, coordinator requests...), an
    ACL request's per-item answer, else an ErrorResponse (the client raises the code)."""
    if isinstance(req, P.ACL_REQUESTS):
        return acl_wire.refuse(req, code, message)
    cls = P.RESPONSES.get(req.API)
    names = {f.name for f in fields(cls)} if cls is not None else set()
    if "error_code" in names:
        kwargs = {"error_code": code}
        if "error_message" in names:
            kwargs["error_message"] = message
        try:
            return cls(**kwargs)
        except TypeError:  # a response with required fields: the generic refusal
            pass
    return P.ErrorResponse(error_code=code, error_message=message)


def serve_acl_request(ctx, req: object, respond: Callable[[object], None], internal: bool,
                      admin: Callable[[object], None]) -> None:
    """CreateAcls/DeleteAcls to the controller (``admin(request)``), DescribeAcls from the
    image; SECURITY_DISABLED on a client listener of a broker without an authorizer."""
    if not internal and not authorizer_of(ctx.broker_configs).enabled:
        respond(acl_wire.refuse(req, E.SECURITY_DISABLED,
                                "no authorizer is configured on this broker "
                                "(authorizer.class.name, docs/security.md)"))
    elif isinstance(req, P.DescribeAclsRequest):
        respond(acl_wire.describe(ctx.image, req))
    else:
        admin(req)
