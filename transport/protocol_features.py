"""The feature-level requests of the wire protocol (Kafka's DescribeFeatures as in
ApiVersions' feature fields, and UpdateFeatures; docs/operations.md, "Upgrades").

Registered in transport/protocol.py's ``REQUESTS``/``RESPONSES`` and re-exported there.
DescribeFeatures is answered by the active controller (it knows every registered broker's
supported range); UpdateFeatures goes to the active controller (forwarded like CreateTopics),
which finalizes a level only if every registered broker can read it
(coordinator/features.py).
"""

from __future__ import annotations

from dataclasses import field
from typing import ClassVar

from rillet.frozen import frozen

_msg = frozen(kw_only=True)


@_msg
class DescribeFeaturesRequest:
    API: ClassVar[str] = "DescribeFeatures"
    VERSION: ClassVar[int] = 0


@_msg
class SupportedFeature:
    """A feature this broker (or, for ``broker_id`` -1, every registered broker) can read."""

    name: str
    min_version: int
    max_version: int


@_msg
class BrokerFeatures:
    broker_id: int
    min_version: int
    max_version: int
    fenced: bool = False


@_msg
class DescribeFeaturesResponse:
    """``finalized``: feature name -> level; ``supported``: the range every registered broker
    reads (what may be finalized); ``brokers``: each broker's own metadata.version range;
    ``levels``: level -> what it adds."""

    API: ClassVar[str] = "DescribeFeatures"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    finalized: dict[str, int] = field(default_factory=dict)
    supported: tuple[SupportedFeature, ...] = ()
    brokers: tuple[BrokerFeatures, ...] = ()
    levels: dict[str, str] = field(default_factory=dict)


@_msg
class FeatureUpdate:
    """Finalize ``feature`` at ``max_version_level`` (Kafka's UpdateFeatures entry)."""

    feature: str
    max_version_level: int


@_msg
class UpdateFeaturesRequest:
    API: ClassVar[str] = "UpdateFeatures"
    VERSION: ClassVar[int] = 0
    updates: tuple[FeatureUpdate, ...]
    validate_only: bool = False
    timeout_ms: int = 30000


@_msg
class UpdatableFeatureResult:
    feature: str
    error_code: int = 0
    error_message: str | None = None


@_msg
class UpdateFeaturesResponse:
    API: ClassVar[str] = "UpdateFeatures"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    results: tuple[UpdatableFeatureResult, ...] = ()


FEATURE_REQUESTS = (DescribeFeaturesRequest, UpdateFeaturesRequest)
FEATURE_RESPONSES = (DescribeFeaturesResponse, UpdateFeaturesResponse)
