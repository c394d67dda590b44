"""Feature levels on the wire and in the broker (coordinator/features.py has the rules).

* ``local_versions(broker_id)``: the ``metadata.version`` levels this broker process reads,
  reported in every heartbeat. Normally ``1..LATEST_LEVEL``. TEST-ONLY hook: the environment
  variable ``RILLET_TEST_MAX_METADATA_VERSION="BROKER:LEVEL[,BROKER:LEVEL]"`` caps what the
  named brokers report, simulating a broker of an older release during a rolling upgrade
  (tests/integration/test_rolling_upgrade.py). It exists for tests only; never set it in
  production (a capped broker refuses records it could in fact read).
* ``decide_update`` / ``describe``: UpdateFeatures and DescribeFeatures on the active
  controller; ``refuse``: their typed refusal.
* ``bootstrap``: the first active controller of a new cluster finalizes the start level.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from rillet.coordinator import features as ft
from rillet.coordinator import metadata as md
from rillet.coordinator.control import ControllerResult, Note
from rillet.transport import protocol as P

ENV_CAP = "RILLET_TEST_MAX_METADATA_VERSION"


def local_versions(broker_id: int, environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """``(min, max)`` metadata.version this broker reads (see the test-only cap above)."""
    hi = ft.LATEST_LEVEL
    for item in filter(None, (s.strip() for s in environ.get(ENV_CAP, "").split(","))):
        broker, _, level = item.partition(":")
        if broker.strip() == str(broker_id) and level.strip().isdigit():
            hi = max(ft.MIN_LEVEL, min(hi, int(level)))
    return (ft.MIN_LEVEL, hi)


def _registered(image: md.MetadataImage):
    return [(b.broker_id, b.metadata_versions) for b in image.brokers.values()]


def bootstrap(image: md.MetadataImage, requested: int, own: tuple[int, int]) -> ControllerResult:
    """Records finalizing a new cluster's first level: ``requested`` (0: latest), within
    this controller's and every already registered broker's range. Nothing if a level is
    finalized already or the log predates feature levels (it then stays at level 1)."""
    if ft.METADATA_VERSION in image.features:
        return ControllerResult([], None)
    if image.offset:
        note = Note("warning", "metadata.version is not finalized: this metadata log predates "
                    "feature levels, so the cluster is at level 1; finish the upgrade with "
                    f"`rillet features upgrade --metadata-version {ft.LATEST_LEVEL}`")
        return ControllerResult([], None, (note,))
    level = ft.bootstrap_level(requested, own[1])
    for _, (_lo, hi) in _registered(image):
        level = min(level, hi)
    record = ft.FeatureLevelRecord(name=ft.METADATA_VERSION, level=level)
    return ControllerResult([record], None, (Note("info", f"new cluster: metadata.version {level}"),))


def decide_update(
    req: P.UpdateFeaturesRequest, image: md.MetadataImage, own: tuple[int, int]
) -> ControllerResult:
    records, results, notes = [], [], []
    for u in req.updates:
        try:
            if u.feature != ft.METADATA_VERSION:
                raise ft.FeatureError(f"unknown feature {u.feature!r} (known: metadata.version)")
            recs = ft.update(image.metadata_version, u.max_version_level, _registered(image),
                             controller_max=own[1])
            results.append(P.UpdatableFeatureResult(feature=u.feature))
            records += recs
            if recs:
                notes.append(Note("info", f"finalizing metadata.version {u.max_version_level} "
                                  f"(was {image.metadata_version})"))
        except ft.FeatureError as e:
            results.append(P.UpdatableFeatureResult(
                feature=u.feature, error_code=P.code_of(e.kind), error_message=e.message))
    if req.validate_only or any(r.error_code for r in results):
        records = []  # Kafka: all updates or none
    return ControllerResult(records, P.UpdateFeaturesResponse(results=tuple(results)), tuple(notes))


def describe(image: md.MetadataImage, own: tuple[int, int]) -> P.DescribeFeaturesResponse:
    ranges = [r for _, r in _registered(image)] or [own]
    lo = max(r[0] for r in ranges)
    hi = min(min(r[1] for r in ranges), own[1])
    finalized = {ft.METADATA_VERSION: image.metadata_version, **image.features}
    return P.DescribeFeaturesResponse(
        finalized=finalized,
        supported=(P.SupportedFeature(name=ft.METADATA_VERSION, min_version=lo, max_version=hi),),
        brokers=tuple(
            P.BrokerFeatures(broker_id=b.broker_id, min_version=b.metadata_versions[0],
                             max_version=b.metadata_versions[1], fenced=b.fenced)
            for b in sorted(image.brokers.values(), key=lambda b: b.broker_id)),
        levels={str(k): v for k, v in ft.METADATA_VERSIONS.items()},
    )


def refuse(req: object, error_code: int, message: str) -> object:
    if isinstance(req, P.UpdateFeaturesRequest):
        return P.UpdateFeaturesResponse(error_code=error_code, error_message=message, results=tuple(
            P.UpdatableFeatureResult(feature=u.feature, error_code=error_code,
                                     error_message=message) for u in req.updates))
    return P.DescribeFeaturesResponse(error_code=error_code, error_message=message)


def decode_readable(payload: bytes, supported_max: int) -> list[object]:
    """A metadata entry's records; ``ft.UnreadableRecord`` if one is of an unknown type or
    needs a level above ``supported_max`` (the broker must stop: skipping it would leave
    this broker's image silently different from the cluster's)."""
    records = md.decode_records(payload)
    for r in records:
        ft.check_readable(type(r).__name__, True, supported_max)
    return records


def snapshot_readable(data: bytes, supported_max: int) -> md.MetadataImage:
    """``md.decode_snapshot`` with the same check."""
    return md.replay(decode_readable(data, supported_max))


def halt(message: str) -> None:
    """Stop this broker process at once: it cannot follow the metadata log (like Kafka's
    fatal fault handler). Its logs recover on the next start, as after a crash."""
    import sys

    from loguru import logger

    logger.critical("STOPPING: {}", message)
    try:
        sys.stderr.flush()
    finally:
        os._exit(78)
