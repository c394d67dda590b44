"""The client-quota requests of the wire protocol (Kafka's AlterClientQuotas and
DescribeClientQuotas; docs/security.md, "Quotas").

Registered in transport/protocol.py's ``REQUESTS``/``RESPONSES`` and re-exported there.
An entity is a list of parts ``(entity_type, entity_name)`` with the types ``user`` and
``client-id``; ``entity_name`` None is the default entity (``<default>`` in the tools).
Quota values travel as decimal text (``"1048576"``, ``"50.5"``): the codec has no floats.
AlterClientQuotas goes to the active controller (forwarded like CreateTopics);
DescribeClientQuotas is answered by any broker from its metadata image.
"""

from __future__ import annotations

from typing import ClassVar

from rillet.frozen import frozen

_msg = frozen(kw_only=True)


@_msg
class QuotaEntityPart:
    entity_type: str  # user or client-id
    entity_name: str | None = None  # None: the default entity


@_msg
class QuotaOpEntry:
    """Set ``key`` to ``value`` (decimal text), or ``remove`` it."""

    key: str
    value: str = ""
    remove: bool = False


@_msg
class ClientQuotaAlteration:
    entity: tuple[QuotaEntityPart, ...]
    ops: tuple[QuotaOpEntry, ...]


@_msg
class AlterClientQuotasRequest:
    API: ClassVar[str] = "AlterClientQuotas"
    VERSION: ClassVar[int] = 0
    entries: tuple[ClientQuotaAlteration, ...]
    validate_only: bool = False


@_msg
class AlterClientQuotasResult:
    """One entry's outcome, in request order (INVALID_REQUEST: nothing of it applied)."""

    error_code: int = 0
    error_message: str | None = None
    entity: tuple[QuotaEntityPart, ...] = ()


@_msg
class AlterClientQuotasResponse:
    API: ClassVar[str] = "AlterClientQuotas"
    VERSION: ClassVar[int] = 0
    entries: tuple[AlterClientQuotasResult, ...] = ()
    throttle_time_ms: int = 0


@_msg
class QuotaFilterComponent:
    """``match_type`` 0 EXACT (``match`` names it), 1 DEFAULT, 2 SPECIFIED (any name)."""

    entity_type: str
    match_type: int = 0
    match: str | None = None


@_msg
class DescribeClientQuotasRequest:
    """Entities matching every component; ``strict``: and having no other entity type."""

    API: ClassVar[str] = "DescribeClientQuotas"
    VERSION: ClassVar[int] = 0
    components: tuple[QuotaFilterComponent, ...] = ()
    strict: bool = False


@_msg
class QuotaDescription:
    entity: tuple[QuotaEntityPart, ...]
    values: dict[str, str]


@_msg
class DescribeClientQuotasResponse:
    API: ClassVar[str] = "DescribeClientQuotas"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    entries: tuple[QuotaDescription, ...] = ()
    throttle_time_ms: int = 0


QUOTA_REQUESTS = (AlterClientQuotasRequest, DescribeClientQuotasRequest)
QUOTA_RESPONSES = (AlterClientQuotasResponse, DescribeClientQuotasResponse)
