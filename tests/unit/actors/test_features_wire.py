"""Feature levels in the broker shell (actors/features.py): the test-only cap, the check of
every metadata entry a broker applies, and the controller stopping the broker (never skipping)
on a record it cannot read."""

from __future__ import annotations

import json

import pytest
from rillet.actors import features as fw
from rillet.actors.controller import Controller
from rillet.coordinator import features as ft
from rillet.coordinator import metadata as md
from rillet.transport import protocol as P


def test_the_test_only_cap_names_brokers():
    assert fw.local_versions(3, {}) == (1, ft.LATEST_LEVEL)
    env = {fw.ENV_CAP: "3:1, 2:2"}
    assert fw.local_versions(3, env) == (1, 1)
    assert fw.local_versions(2, env) == (1, 2)
    assert fw.local_versions(1, env) == (1, ft.LATEST_LEVEL)
    assert fw.local_versions(1, {fw.ENV_CAP: "1:0"}) == (1, 1)  # never below level 1


def _entry(*records: dict) -> bytes:
    return json.dumps(list(records)).encode()


ACL = {"type": "AccessControlEntryRecord", "resource_type": "TOPIC", "resource_name": "t",
       "pattern_type": "LITERAL", "principal": "User:a", "host": "*", "operation": "READ",
       "permission": "ALLOW"}


def test_an_entry_above_the_brokers_level_or_of_an_unknown_type_is_unreadable():
    with pytest.raises(ft.UnreadableRecord, match="AccessControlEntryRecord needs metadata"):
        fw.decode_readable(_entry(ACL), 1)
    assert len(fw.decode_readable(_entry(ACL), 2)) == 1
    with pytest.raises(ft.UnreadableRecord, match="unknown metadata record type 'Future'"):
        fw.decode_readable(_entry({"type": "Future"}), ft.LATEST_LEVEL)


def test_the_controller_stops_the_broker_on_an_unreadable_entry(tmp_path, monkeypatch):
    monkeypatch.setenv(fw.ENV_CAP, "1:1")
    fatal: list[str] = []
    c = Controller(broker_id=1, metadata_dir=tmp_path, publish=lambda *_: None,
                   broker_configs={}, endpoint=None, on_fatal=fatal.append)
    c._apply_payload(md.encode_records([md.CreateTopic(name="t", topic_id="i")]), 1)
    assert "t" in c.image.topics and not fatal
    with pytest.raises(ft.UnreadableRecord):
        c._apply_payload(_entry(ACL), 2)
    assert fatal == ["metadata log entry 2 is unreadable: metadata record "
                     "AccessControlEntryRecord needs metadata.version 2; this broker reads up "
                     "to 1; upgrade this broker"]
    assert not c.image.acls  # never applied, never skipped past


def test_update_features_is_all_or_nothing_and_describe_reports_ranges():
    image = md.replay([
        ft.FeatureLevelRecord(name="metadata.version", level=1),
        *md.register_broker(md.MetadataImage(), 1, "h", 1, metadata_versions=(1, 3)),
        *md.register_broker(md.MetadataImage(), 2, "h", 2, metadata_versions=(1, 2)),
    ])
    req = P.UpdateFeaturesRequest(updates=(
        P.FeatureUpdate(feature="metadata.version", max_version_level=2),
        P.FeatureUpdate(feature="bogus", max_version_level=1)))
    r = fw.decide_update(req, image, (1, 3))
    assert r.records == []
    assert [x.error_code for x in r.response.results] == [0, P.ErrorCode.INVALID_UPDATE_VERSION]
    ok = fw.decide_update(P.UpdateFeaturesRequest(updates=req.updates[:1]), image, (1, 3))
    assert ok.records == [ft.FeatureLevelRecord(name="metadata.version", level=2)]
    d = fw.describe(image, (1, 3))
    assert d.finalized == {"metadata.version": 1}
    assert [(s.min_version, s.max_version) for s in d.supported] == [(1, 2)]
    assert [(b.broker_id, b.max_version) for b in d.brokers] == [(1, 3), (2, 2)]
