"""DescribeClientQuotas (key 48, v0-1) and AlterClientQuotas (key 49, v0-1) on the KAFKA
listener (docs/security.md, "Quotas"; kafka-configs.sh --entity-type users/clients).

Both become the native requests (transport/protocol_quota.py) and take their way:
DescribeClientQuotas is answered from this broker's metadata image
(actors/quota_wire.py ``describe``), AlterClientQuotas goes to the active controller
(actors/kafka_admin.py ``to_controller``) and is answered once this broker's image shows it.
With the authorizer on, the native rules apply (DESCRIBE_CONFIGS / ALTER_CONFIGS on the
CLUSTER, Kafka's). Kafka's values are float64; the native protocol carries decimal text.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode
from rillet.coordinator.metadata import MetadataImage
from rillet.transport import protocol as P

from . import quota_wire
from .kafka_admin import NO_THROTTLE, kcode, response, to_controller
from .kafka_auth import gated
from .kafka_dispatch import Call, api
from .kafka_metadata import build

DESCRIBE_CLIENT_QUOTAS, ALTER_CLIENT_QUOTAS = 48, 49


def _number(text: str) -> float:
    return float(text)


def _value_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@api(DESCRIBE_CLIENT_QUOTAS, 0, 1)
def describe_client_quotas(call: Call):
    body = call.request.body
    cls, mod = response(call, DESCRIBE_CLIENT_QUOTAS)
    native = P.DescribeClientQuotasRequest(
        components=tuple(P.QuotaFilterComponent(entity_type=c.entity_type,
                                                match_type=int(c.match_type), match=c.match)
                         for c in body.components),
        strict=bool(body.strict))

    def answer(resp) -> None:
        if isinstance(resp, P.ErrorResponse) or resp.error_code:
            call.respond(build(cls, throttle_time=NO_THROTTLE, error_code=kcode(resp.error_code),
                               error_message=resp.error_message, entries=None))
            return
        entries = []
        for e in resp.entries:
            values = []
            for k, v in sorted(e.values.items()):
                try:
                    values.append(build(mod.ValueData, key=k, value=_number(v)))
                except ValueError:
                    continue  # never stored so: the controller validates values
            entries.append(build(mod.EntryData, entity=tuple(
                build(mod.EntityData, entity_type=p.entity_type, entity_name=p.entity_name)
                for p in e.entity), values=tuple(values)))
        call.respond(build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none,
                           error_message=None, entries=tuple(entries)))

    native, answer = gated(call, native, answer)  # ACLs (actors/kafka_auth.py)
    if native is not None:
        answer(quota_wire.describe(call.broker.image, native))
    return None


@api(ALTER_CLIENT_QUOTAS, 0, 1)
def alter_client_quotas(call: Call):
    body = call.request.body
    cls, mod = response(call, ALTER_CLIENT_QUOTAS)
    native = P.AlterClientQuotasRequest(
        entries=tuple(P.ClientQuotaAlteration(
            entity=tuple(P.QuotaEntityPart(entity_type=p.entity_type, entity_name=p.entity_name)
                         for p in e.entity),
            ops=tuple(P.QuotaOpEntry(key=o.key, value="" if o.remove else _value_text(o.value),
                                     remove=bool(o.remove)) for o in e.ops))
            for e in body.entries),
        validate_only=bool(body.validate_only))

    def entity(parts) -> tuple:
        return tuple(build(mod.EntityData, entity_type=p.entity_type, entity_name=p.entity_name)
                     for p in parts)

    def answer(resp: P.AlterClientQuotasResponse):
        return build(cls, throttle_time=NO_THROTTLE, entries=tuple(
            build(mod.EntryData, error_code=kcode(r.error_code), error_message=r.error_message,
                  entity=entity(r.entity)) for r in resp.entries))

    def fail(code: int, message: str):
        return build(cls, throttle_time=NO_THROTTLE, entries=tuple(
            build(mod.EntryData, error_code=kcode(code), error_message=message,
                  entity=entity(e.entity)) for e in native.entries))

    def settled(image: MetadataImage, resp: P.AlterClientQuotasResponse) -> bool:
        if native.validate_only:
            return True
        for e, r in zip(native.entries, resp.entries, strict=False):
            if r.error_code:
                continue
            key = tuple(sorted((p.entity_type, p.entity_name) for p in e.entity))
            now = image.client_quotas.get(key, {})
            for o in e.ops:
                if (o.key in now) == o.remove or (
                        not o.remove and now[o.key] != float(o.value)):
                    return False
        return True

    if not native.entries:
        return answer(P.AlterClientQuotasResponse())
    to_controller(call, native, answer, fail, settled)
    return None
