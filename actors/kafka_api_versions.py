"""ApiVersions (key 18) on the KAFKA listener: exactly the dispatch table's versions."""

from __future__ import annotations

from datetime import timedelta

from kio.schema.api_versions.v0.response import ApiVersion as ApiVersionV0
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ResponseV0
from kio.schema.errors import ErrorCode
from kio.static.primitive import i16, i32Timedelta, i64

from .kafka_dispatch import HANDLERS, Call, api
from .kafka_schemas import load_response_schema

KEY = 18


def _entries(cls) -> tuple:
    return tuple(
        cls(api_key=i16(a.key), min_version=i16(a.min_version), max_version=i16(a.max_version))
        for a in sorted(HANDLERS.values(), key=lambda a: a.key)
    )


def unsupported_version_response() -> ResponseV0:
    """Kafka's answer to an ApiVersions request above the supported range: v0 shape,
    UNSUPPORTED_VERSION and the table, so the client retries at a version it can use."""
    return ResponseV0(error_code=ErrorCode.unsupported_version, api_keys=_entries(ApiVersionV0))


@api(KEY, 0, 3)
def api_versions(call: Call):
    version = call.request.api_version
    response_cls = load_response_schema(KEY, version)
    module = __import__(response_cls.__module__, fromlist=["ApiVersion"])
    fields = {"error_code": ErrorCode.none, "api_keys": _entries(module.ApiVersion)}
    if version >= 1:
        fields["throttle_time"] = i32Timedelta.parse(timedelta(0))
    broker = call.broker  # a full BrokerContext (tests may pass less)
    if version >= 3 and hasattr(broker, "broker_id") and hasattr(broker, "image"):
        fields.update(_features(module, broker))
    return response_cls(**fields)


def _features(module, broker) -> dict:
    """v3's tagged feature fields (KIP-584): this broker's metadata.version range and the
    cluster's finalized level (actors/features.py)."""
    from rillet.coordinator.features import METADATA_VERSION

    from .features import local_versions

    lo, hi = local_versions(broker.broker_id)
    image = broker.image
    return {
        "supported_features": (module.SupportedFeatureKey(
            name=METADATA_VERSION, min_version=i16(lo), max_version=i16(hi)),),
        "finalized_features_epoch": i64(image.offset),
        "finalized_features": (module.FinalizedFeatureKey(
            name=METADATA_VERSION, max_version_level=i16(image.metadata_version),
            min_version_level=i16(image.metadata_version)),),
    }
