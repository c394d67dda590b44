"""Admin methods of client quotas (docs/security.md, "Quotas"), mixed into ``rillet.Admin``.

    from rillet import ClientQuotaAlteration
    admin.alter_client_quotas([ClientQuotaAlteration(
        {"user": "alice"}, {"producer_byte_rate": 1048576, "request_percentage": None})])
    admin.describe_client_quotas({"user": "alice"})   # [({"user": "alice"}, {...})]

An entity is a dict of ``user`` and/or ``client-id`` to a name, or to ``None`` for the
default entity (Kafka's ``<default>``). An op's value ``None`` removes that quota. Alter goes
to the active controller, which commits ``ClientQuotaRecord``s to the metadata log; every
broker applies them from its image. Errors: ``InvalidRequestError`` (a malformed entity,
key or value: that alteration changes nothing), ``ClusterAuthorizationFailedError`` (with
an authorizer, ALTER_CONFIGS / DESCRIBE_CONFIGS on the CLUSTER is needed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import field

from rillet.errors import error_for_code
from rillet.frozen import frozen
from rillet.transport import protocol as p

#: ``describe_client_quotas`` filter value: any named (non-default) entity of that type.
ANY_NAME = object()


@frozen
class ClientQuotaAlteration:
    """Set (or, with value None, remove) the ``ops`` quotas of ``entity``."""

    entity: Mapping[str, str | None]
    ops: Mapping[str, float | None] = field(default_factory=dict)


def _parts(entity: Mapping[str, str | None]) -> tuple[p.QuotaEntityPart, ...]:
    return tuple(p.QuotaEntityPart(entity_type=t, entity_name=n) for t, n in entity.items())


def _value(v: float) -> str:
    return str(int(v)) if float(v) == int(v) else repr(float(v))


def _check(code: int, message: str | None) -> None:
    if code:
        raise error_for_code(code, message)


class QuotaAdminMixin:
    def alter_client_quotas(self, alterations: Iterable[ClientQuotaAlteration], *,
                            validate_only: bool = False) -> None:
        """Apply each alteration whole or not at all; then raise the first error."""
        req = p.AlterClientQuotasRequest(entries=tuple(
            p.ClientQuotaAlteration(entity=_parts(a.entity), ops=tuple(
                p.QuotaOpEntry(key=k, remove=True) if v is None
                else p.QuotaOpEntry(key=k, value=_value(v))
                for k, v in a.ops.items()))
            for a in alterations), validate_only=validate_only)
        resp = self._controller_call(req, self.config.request_timeout_ms,
                                     lambda r: [x.error_code for x in getattr(r, "entries", ())])
        if isinstance(resp, p.ErrorResponse):
            _check(resp.error_code, resp.error_message)
        for r in resp.entries:
            _check(r.error_code, r.error_message)

    def describe_client_quotas(self, entity_filter: Mapping[str, object] | None = None, *,
                               strict: bool = False) -> list[tuple[dict, dict[str, float]]]:
        """The quotas of the entities matching ``entity_filter`` (type -> a name, ``None``
        for the default entity, ``ANY_NAME`` for any named one; empty: all), as
        ``(entity, {key: value})`` sorted by entity; ``strict``: only entities of exactly
        those types. Asked of the active controller (it has applied what it acknowledged)."""
        components = []
        for kind, match in (entity_filter or {}).items():
            if match is ANY_NAME:
                components.append(p.QuotaFilterComponent(entity_type=kind, match_type=2))
            elif match is None:
                components.append(p.QuotaFilterComponent(entity_type=kind, match_type=1))
            else:
                components.append(p.QuotaFilterComponent(entity_type=kind, match=str(match)))
        req = p.DescribeClientQuotasRequest(components=tuple(components), strict=strict)
        resp = self._client.call_controller(req, self.config.request_timeout_ms)
        _check(resp.error_code, resp.error_message)
        return [({e.entity_type: e.entity_name for e in d.entity},
                 {k: float(v) for k, v in d.values.items()}) for d in resp.entries]
