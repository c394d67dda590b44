"""The pure metadata.version rules (coordinator/features.py) and their place in the image,
the heartbeat decisions and the records (issue #21, rolling upgrades)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rillet.coordinator import acl_store, broker_configs, quotas
from rillet.coordinator import features as ft
from rillet.coordinator import metadata as md
from rillet.coordinator.control import brokers as cb


def _image(level: int | None, ranges: dict[int, tuple[int, int]]) -> md.MetadataImage:
    records: list[object] = []
    if level is not None:
        records.append(ft.FeatureLevelRecord(name=ft.METADATA_VERSION, level=level))
    for b, (lo, hi) in ranges.items():
        records += md.register_broker(md.MetadataImage(), b, "h", 9000 + b,
                                      incarnation=f"1-{b}", metadata_versions=(lo, hi))
    return md.replay(records)


def test_every_record_type_has_a_known_level():
    assert set(ft.RECORD_LEVELS) <= set(md.RECORD_TYPES)
    assert all(ft.level_of(n) in ft.METADATA_VERSIONS for n in md.RECORD_TYPES)
    assert ft.level_of("AccessControlEntryRecord") == 2
    assert ft.level_of("SetBrokerConfig") == 3
    assert ft.level_of("CreateTopic") == ft.level_of("FeatureLevelRecord") == 1


def test_update_refused_while_a_registered_broker_cannot_read_the_level():
    image = _image(1, {1: (1, 3), 2: (1, 3), 3: (1, 1)})
    with pytest.raises(ft.FeatureError, match="broker 3 supports 1-1") as e:
        ft.update(image.metadata_version, 2, [(b.broker_id, b.metadata_versions)
                                              for b in image.brokers.values()])
    assert e.value.kind == "INVALID_UPDATE_VERSION"
    upgraded = _image(1, {1: (1, 3), 2: (1, 3), 3: (1, 3)})
    records = ft.update(1, 3, [(b.broker_id, b.metadata_versions)
                               for b in upgraded.brokers.values()])
    assert records == [ft.FeatureLevelRecord(name="metadata.version", level=3)]
    assert md.replay(records, upgraded).metadata_version == 3


def test_update_refuses_downgrades_unknown_levels_and_is_idempotent():
    with pytest.raises(ft.FeatureError, match="downgrade"):
        ft.update(3, 2, [])
    with pytest.raises(ft.FeatureError, match="not a level"):
        ft.update(1, ft.LATEST_LEVEL + 1, [])
    with pytest.raises(ft.FeatureError, match="not a level"):
        ft.update(1, 3, [], controller_max=2)  # a controller cannot finalize what it lacks
    # an old-release controller is one of the brokers: the refusal names it as a broker, as
    # it would if another broker led the quorum
    with pytest.raises(ft.FeatureError, match="broker 3 supports 1-1"):
        ft.update(1, 3, [(1, (1, 3)), (3, (1, 1))], controller_max=1)
    assert ft.update(2, 2, [(1, (1, 3))]) == []


def test_records_above_the_finalized_level_are_refused_with_the_level_they_need():
    acl = acl_store.ACL_RECORDS[0]
    fields = {f: "x" for f in acl.__dataclass_fields__}
    with pytest.raises(ft.FeatureError, match="ACLs need metadata.version 2") as e:
        ft.check_records(1, [md.CreateTopic(name="t", topic_id="i"), acl(**fields)])
    assert e.value.kind == "UNSUPPORTED_VERSION"
    assert "rillet features upgrade --metadata-version 2" in e.value.message
    ft.check_records(2, [acl(**fields)])
    with pytest.raises(ft.FeatureError, match="client quotas need metadata.version 3"):
        ft.check_records(2, [quotas.ClientQuotaRecord.__new__(quotas.ClientQuotaRecord)])
    with pytest.raises(ft.FeatureError, match="dynamic broker configs"):
        ft.check_records(2, [broker_configs.SetBrokerConfig(broker="", name="k", value="v")])


def test_a_log_without_a_feature_record_is_level_1_and_bootstrap_takes_the_latest():
    assert md.MetadataImage().metadata_version == 1
    assert ft.bootstrap_level(0, ft.LATEST_LEVEL) == ft.LATEST_LEVEL
    assert ft.bootstrap_level(0, 1) == 1  # an "old" first controller
    assert ft.bootstrap_level(2, 3) == 2
    with pytest.raises(ft.FeatureError):
        ft.bootstrap_level(ft.LATEST_LEVEL + 1, ft.LATEST_LEVEL)


def test_unknown_or_too_new_records_are_unreadable_never_skipped():
    with pytest.raises(ft.UnreadableRecord, match="unknown metadata record type 'FutureRecord'"):
        md.from_dict({"type": "FutureRecord", "x": 1})
    with pytest.raises(ft.UnreadableRecord, match="needs metadata.version 2.*reads up to 1"):
        ft.check_readable("AccessControlEntryRecord", True, 1)
    ft.check_readable("AccessControlEntryRecord", True, 2)


def test_snapshot_keeps_the_level_and_each_brokers_range():
    image = _image(2, {1: (1, 3), 3: (1, 1)})
    again = md.decode_snapshot(md.encode_snapshot(image))
    assert again.metadata_version == 2
    assert again.brokers[1].metadata_versions == (1, 3)
    assert again.brokers[3].metadata_versions == (1, 1)


def _beat(b: int, hi: int, incarnation: str = "1-a") -> SimpleNamespace:
    return SimpleNamespace(
        broker_id=b, host="h", port=1, rack=None, metadata_offset=0, incarnation=incarnation,
        clean_shutdown=True, internal_host="h", internal_port=2, want_shut_down=False,
        kafka_host="", kafka_port=0, metadata_version_min=1, metadata_version_max=hi)


def test_the_controller_refuses_to_register_a_broker_that_cannot_read_the_level():
    image = _image(3, {1: (1, 3)})
    hb = cb.BrokerHeartbeats(10_000)
    beat = hb.heartbeat(image, _beat(2, 1), now_ms=0, applied_index=5)
    assert (beat.error, beat.fenced, beat.action) == ("UNSUPPORTED_VERSION", True, None)
    assert "broker 2 supports metadata.version 1-1 but the cluster is at 3" in beat.message
    assert hb.register(image, _beat(2, 1), unclean_default=False).records == []
    ok = hb.heartbeat(image, _beat(2, 3), now_ms=0, applied_index=5)
    assert (ok.error, ok.action) == ("NONE", cb.REGISTER)
    (reg,) = hb.register(image, _beat(2, 3), unclean_default=False).records
    assert (reg.metadata_version_min, reg.metadata_version_max) == (1, 3)
