"""UpdateFeatures (key 57) on the KAFKA listener: Kafka clients' (and kafka-features.sh's)
``metadata.version`` upgrade, mapped onto the native UpdateFeatures of the active controller
(actors/features.py, coordinator/features.py). A downgrade request (v0 ``allow_downgrade``,
v1 ``upgrade_type`` 2 or 3) is refused as the native one is: rillet never downgrades.
Kafka clients read the finalized level from ApiVersions v3 (actors/kafka_api_versions.py)."""

from __future__ import annotations

from typing import Any

from rillet.transport import protocol as P

from .kafka_admin import NO_THROTTLE, kcode, response, timeout_ms, to_controller
from .kafka_dispatch import Call, api
from .kafka_metadata import build

KEY = 57


@api(KEY, 0, 1)
def update_features(call: Call):
    body = call.request.body
    cls, mod = response(call, KEY)
    updates = tuple(P.FeatureUpdate(feature=u.feature, max_version_level=int(u.max_version_level))
                    for u in body.feature_updates)

    def answer(resp: P.UpdateFeaturesResponse) -> Any:
        return build(cls, throttle_time=NO_THROTTLE, error_code=kcode(resp.error_code),
                     error_message=resp.error_message, results=tuple(
                         build(mod.UpdatableFeatureResult, feature=r.feature,
                               error_code=kcode(r.error_code), error_message=r.error_message)
                         for r in resp.results))

    def fail(code: int, message: str) -> Any:
        return answer(P.UpdateFeaturesResponse(error_code=code, error_message=message,
                                               results=tuple(P.UpdatableFeatureResult(
                                                   feature=u.feature, error_code=code,
                                                   error_message=message) for u in updates)))

    to_controller(call, P.UpdateFeaturesRequest(
        updates=updates, validate_only=bool(getattr(body, "validate_only", False)),
        timeout_ms=timeout_ms(body)), answer, fail)
    return None
