"""The ACL requests of the wire protocol (Kafka's CreateAcls, DescribeAcls, DeleteAcls).

Registered in transport/protocol.py's ``REQUESTS``/``RESPONSES`` and re-exported there, so
``protocol.CreateAclsRequest`` is the name to use. docs/protocol.md documents them.

Enumerations travel as Kafka's names (strings), not numbers: ``resource_type`` TOPIC, GROUP,
CLUSTER, TRANSACTIONAL_ID; ``pattern_type`` LITERAL, PREFIXED; ``operation`` ALL, READ,
WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
IDEMPOTENT_WRITE; ``permission`` ALLOW, DENY (coordinator/acl.py). A filter field of
``"ANY"`` (or ``None`` for the free-text fields) matches every value; the filter pattern type
``MATCH`` selects the bindings that apply to the literal ``resource_name``: the literal
binding of that name, the ``*`` binding and every PREFIXED binding that is a prefix of it.
CreateAcls and DeleteAcls go to the active controller (forwarded like CreateTopics);
DescribeAcls is answered by any broker from its metadata image.
"""

from __future__ import annotations

from typing import ClassVar

from rillet.frozen import frozen

_msg = frozen(kw_only=True)


@_msg
class AclEntry:
    """One ACL binding (a creation, or one found by DescribeAcls / DeleteAcls)."""

    resource_type: str
    resource_name: str
    pattern_type: str = "LITERAL"
    principal: str
    host: str = "*"
    operation: str
    permission: str = "ALLOW"


@_msg
class AclFilterEntry:
    """Kafka's AclBindingFilter: ``"ANY"``/``None`` fields match anything."""

    resource_type: str = "ANY"
    resource_name: str | None = None
    pattern_type: str = "ANY"  # ANY, LITERAL, PREFIXED or MATCH
    principal: str | None = None
    host: str | None = None
    operation: str = "ANY"
    permission: str = "ANY"


@_msg
class CreateAclsRequest:
    API: ClassVar[str] = "CreateAcls"
    VERSION: ClassVar[int] = 0
    creations: tuple[AclEntry, ...]


@_msg
class AclCreationResult:
    """The outcome of one creation, in request order (INVALID_REQUEST for a malformed one)."""

    error_code: int = 0
    error_message: str | None = None


@_msg
class CreateAclsResponse:
    API: ClassVar[str] = "CreateAcls"
    VERSION: ClassVar[int] = 0
    results: tuple[AclCreationResult, ...] = ()


@_msg
class DescribeAclsRequest:
    API: ClassVar[str] = "DescribeAcls"
    VERSION: ClassVar[int] = 0
    filter: AclFilterEntry = AclFilterEntry()


@_msg
class DescribeAclsResponse:
    API: ClassVar[str] = "DescribeAcls"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    bindings: tuple[AclEntry, ...] = ()


@_msg
class DeleteAclsRequest:
    API: ClassVar[str] = "DeleteAcls"
    VERSION: ClassVar[int] = 0
    filters: tuple[AclFilterEntry, ...]


@_msg
class DeleteAclsFilterResult:
    """The bindings one filter removed (a binding two filters match is listed by both)."""

    error_code: int = 0
    error_message: str | None = None
    matching_acls: tuple[AclEntry, ...] = ()


@_msg
class DeleteAclsResponse:
    API: ClassVar[str] = "DeleteAcls"
    VERSION: ClassVar[int] = 0
    filter_results: tuple[DeleteAclsFilterResult, ...] = ()


ACL_REQUESTS = (CreateAclsRequest, DescribeAclsRequest, DeleteAclsRequest)
ACL_RESPONSES = (CreateAclsResponse, DescribeAclsResponse, DeleteAclsResponse)
