"""AlterClientQuotas / DescribeClientQuotas on the wire, over coordinator/quotas.py.

``decide`` serves the controller (actors/controller_wire.py: AlterClientQuotas commits
``ClientQuotaRecord``s); ``describe`` serves DescribeClientQuotas in the client session from
the broker's image; ``refuse`` gives every entry one error code.
"""

from __future__ import annotations

from rillet.coordinator import metadata as md
from rillet.coordinator import quotas as Q
from rillet.coordinator.control import ControllerResult
from rillet.coordinator.control.result import Note
from rillet.transport import protocol as P

E = P.ErrorCode


def _parts(entity) -> tuple[P.QuotaEntityPart, ...]:
    return tuple(P.QuotaEntityPart(entity_type=t, entity_name=n) for t, n in entity)


def _text(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def entity_text(entity) -> str:
    return ",".join(f"{t}={'<default>' if n is None else n}" for t, n in entity)


def _op(o: P.QuotaOpEntry) -> Q.QuotaOp:
    if o.remove:
        return Q.QuotaOp(o.key, remove=True)
    try:
        value = float(o.value)
    except ValueError:
        raise Q.QuotaError(f"{o.key}: {o.value!r} is not a number") from None
    return Q.QuotaOp(o.key, value)


def decide(request: P.AlterClientQuotasRequest, image: md.MetadataImage) -> ControllerResult:
    """Each entry whole or not at all (INVALID_REQUEST names the fault)."""
    records, results = [], []
    for e in request.entries:
        try:
            ops = [_op(o) for o in e.ops]
            mine, (o,) = Q.alter(image.client_quotas,
                                 [([(p.entity_type, p.entity_name) for p in e.entity], ops)])
            error, message = P.code_of(o.error), o.message
        except Q.QuotaError as err:
            mine, error, message = [], E.INVALID_REQUEST, str(err)
        records += mine
        results.append(P.AlterClientQuotasResult(
            error_code=error, error_message=message, entity=e.entity))
    if request.validate_only:
        records = []
    notes = tuple(Note("info", f"quota {entity_text(r.entity)} "
                               f"{r.key}={'(removed)' if r.remove else _text(r.value)}")
                  for r in records)
    return ControllerResult(records, P.AlterClientQuotasResponse(entries=tuple(results)), notes)


def describe(image: md.MetadataImage, req: P.DescribeClientQuotasRequest):
    try:
        found = Q.describe(image.client_quotas,
                           [(c.entity_type, c.match_type, c.match) for c in req.components],
                           req.strict)
    except Q.QuotaError as e:
        return P.DescribeClientQuotasResponse(error_code=E.INVALID_REQUEST, error_message=str(e))
    return P.DescribeClientQuotasResponse(entries=tuple(
        P.QuotaDescription(entity=_parts(entity), values={k: _text(v) for k, v in values.items()})
        for entity, values in found))


def refuse(request: object, error_code: int, message: str) -> object:
    if isinstance(request, P.AlterClientQuotasRequest):
        return P.AlterClientQuotasResponse(entries=tuple(
            P.AlterClientQuotasResult(error_code=error_code, error_message=message,
                                      entity=e.entity) for e in request.entries))
    return P.DescribeClientQuotasResponse(error_code=error_code, error_message=message)
