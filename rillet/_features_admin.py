"""Admin methods of feature levels (docs/operations.md, "Upgrades"), mixed into ``rillet.Admin``.

    admin.describe_features()
    # FeatureMetadata(finalized={"metadata.version": 1}, supported={"metadata.version": (1, 1)},
    #                 brokers={1: (1, 3), 2: (1, 3), 3: (1, 1)}, levels={1: "...", ...})
    admin.update_features({"metadata.version": 3})

Kafka's ``describe_features`` / ``update_features`` (KIP-584). ``supported`` is the range
every registered broker reads: what may be finalized now. Errors: ``RilletError`` with code
INVALID_UPDATE_VERSION (a downgrade, an unknown level, or a broker that cannot read it: the
message names it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field

from rillet.errors import error_for_code
from rillet.frozen import frozen
from rillet.transport import protocol as p


@frozen
class FeatureMetadata:
    finalized: dict[str, int]
    supported: dict[str, tuple[int, int]]
    brokers: dict[int, tuple[int, int]] = field(default_factory=dict)
    levels: dict[int, str] = field(default_factory=dict)


class FeaturesAdminMixin:
    def describe_features(self) -> FeatureMetadata:
        """The finalized feature levels and what the registered brokers support."""
        req = p.DescribeFeaturesRequest()
        resp = self._controller_call(req, self.config.request_timeout_ms,
                                     lambda r: [getattr(r, "error_code", 0)])
        if resp.error_code:
            raise error_for_code(resp.error_code, resp.error_message)
        return FeatureMetadata(
            finalized=dict(resp.finalized),
            supported={s.name: (s.min_version, s.max_version) for s in resp.supported},
            brokers={b.broker_id: (b.min_version, b.max_version) for b in resp.brokers},
            levels={int(k): v for k, v in resp.levels.items()},
        )

    def update_features(self, updates: Mapping[str, int], *, validate_only: bool = False) -> None:
        """Finalize each feature at its level (all or none); raise the first error."""
        req = p.UpdateFeaturesRequest(updates=tuple(
            p.FeatureUpdate(feature=k, max_version_level=int(v)) for k, v in updates.items()),
            validate_only=validate_only, timeout_ms=self.config.request_timeout_ms)
        resp = self._controller_call(
            req, self.config.request_timeout_ms,
            lambda r: [getattr(r, "error_code", 0),
                       *(x.error_code for x in getattr(r, "results", ()))])
        if resp.error_code:
            raise error_for_code(resp.error_code, resp.error_message)
        for r in resp.results:
            if r.error_code:
                raise error_for_code(r.error_code, r.error_message)
