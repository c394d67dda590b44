"""Wire samples of the client-quota requests (transport/protocol_quota.py)."""

from rillet.transport import protocol as P

_ENTITY = (P.QuotaEntityPart(entity_type="user", entity_name="alice"),
           P.QuotaEntityPart(entity_type="client-id"))

QUOTA_SAMPLES = [
    P.AlterClientQuotasRequest(entries=(P.ClientQuotaAlteration(entity=_ENTITY, ops=(
        P.QuotaOpEntry(key="producer_byte_rate", value="1048576"),
        P.QuotaOpEntry(key="request_percentage", remove=True))),), validate_only=True),
    P.AlterClientQuotasResponse(entries=(P.AlterClientQuotasResult(
        error_code=42, error_message="bad", entity=_ENTITY),)),
    P.DescribeClientQuotasRequest(components=(
        P.QuotaFilterComponent(entity_type="user", match_type=0, match="alice"),), strict=True),
    P.DescribeClientQuotasResponse(entries=(P.QuotaDescription(
        entity=_ENTITY, values={"producer_byte_rate": "1048576"}),), throttle_time_ms=3),
]
