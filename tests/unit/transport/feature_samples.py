"""Round-trip samples of the feature-level APIs (docs/protocol.md, "Feature-level messages")."""

from rillet.transport import protocol as P

FEATURE_SAMPLES = [
    P.DescribeFeaturesRequest(),
    P.DescribeFeaturesResponse(
        finalized={"metadata.version": 2},
        supported=(P.SupportedFeature(name="metadata.version", min_version=1, max_version=2),),
        brokers=(P.BrokerFeatures(broker_id=3, min_version=1, max_version=2, fenced=True),),
        levels={"1": "base", "2": "ACLs"}),
    P.DescribeFeaturesResponse(error_code=41, error_message="not the controller"),
    P.UpdateFeaturesRequest(updates=(P.FeatureUpdate(feature="metadata.version",
                                                     max_version_level=3),), validate_only=True),
    P.UpdateFeaturesResponse(results=(P.UpdatableFeatureResult(
        feature="metadata.version", error_code=95, error_message="broker 3 supports 1-1"),)),
    P.BrokerHeartbeatRequest(broker_id=2, host="h", port=1, metadata_version_min=1,
                             metadata_version_max=3),
    P.BrokerHeartbeatResponse(error_code=35, error_message="broker 2 supports 1-1"),
    P.BrokerStatsResponse(lane_threads={"default": 3, "io": 2}),
]
