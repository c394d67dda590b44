"""A rolling upgrade with metadata.version (issue #21; docs/operations.md, "Upgrades").

Slow: a three-broker cluster in which broker 3 is an "old" broker (it reads metadata.version
1 only: the TEST-ONLY cap RILLET_TEST_MAX_METADATA_VERSION of actors/features.py). While it
runs, finalizing a higher level is refused naming it, and an ACL (a level-2 record) is refused
naming the level it needs; once it "upgrades" (restarts without the cap) the level goes up
with `rillet features upgrade` and the same ACL add works and is stored.

Default suite: one broker started at level 1 (bootstrap.metadata.version): the ACL add is
refused until `rillet features upgrade` raises the level; a downgrade is refused. The rules
themselves are unit-tested (tests/unit/coordinator/test_features.py)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from rillet.actors.features import ENV_CAP

from rillet import AclBinding, AclBindingFilter, Admin, ClientQuotaAlteration
from rillet.cli.main import cli
from rillet.errors import RilletError, UnsupportedVersionError
from rillet.launcher import LocalCluster
from tests.integration.cli_helpers import cli_env, run
from tests.integration.conftest import FAST_CLUSTER_CONFIGS, TEST_BROKER_CONFIGS

GRANT = AclBinding("TOPIC", "orders", "User:alice", "WRITE")


def _wait_for(what, predicate, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def _kafka_update_features(address: str, level: int):
    """UpdateFeatures v1 over the KAFKA listener (what kafka-features.sh sends)."""
    import socket
    from datetime import timedelta

    from kafka_raw import receive_frame as _recv_frame
    from kio.schema.response_header.v1.header import ResponseHeader
    from kio.schema.update_features.v1.request import FeatureUpdateKey, UpdateFeaturesRequest
    from kio.schema.update_features.v1.response import UpdateFeaturesResponse
    from kio.serial import entity_reader
    from kio.static.primitive import i8, i16, i32Timedelta

    from tests.integration.test_kafka_listener import _request

    body = UpdateFeaturesRequest(
        timeout=i32Timedelta.parse(timedelta(seconds=30)), validate_only=False,
        feature_updates=(FeatureUpdateKey(feature="metadata.version",
                                          max_version_level=i16(level), upgrade_type=i8(1)),))
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(_request(api_key=57, version=1, cid=7, body=body))
        frame = _recv_frame(sock)
    _header, at = entity_reader(ResponseHeader)(frame, 0)
    return entity_reader(UpdateFeaturesResponse)(frame, at)[0]


def test_acls_wait_for_the_level_that_introduced_them(tmp_path):
    configs = {**TEST_BROKER_CONFIGS, "authorizer.class.name": "rillet",
               "super.users": "User:ANONYMOUS", "bootstrap.metadata.version": "1"}
    cluster = LocalCluster(tmp_path / "cluster", 1, configs, kafka=True)
    try:
        cluster.start(timeout_s=60)
        settings = {"bootstrap.servers": cluster.bootstrap_servers, "request.timeout.ms": 30000}
        with Admin(settings) as admin:
            assert admin.describe_features().finalized == {"metadata.version": 1}
            with pytest.raises(UnsupportedVersionError, match="ACLs need metadata.version 2"):
                admin.create_acls([GRANT])
            # a Kafka client's UpdateFeatures: an unknown level refused, then level 2
            kafka = cluster.kafka_address(1)
            bad = _kafka_update_features(kafka, 9)
            assert [(r.error_code.name, "not a level" in r.error_message)
                    for r in bad.results] == [("invalid_update_version", True)]
            good = _kafka_update_features(kafka, 2)
            assert [r.error_code.value for r in good.results] == [0]
            assert admin.describe_features().finalized == {"metadata.version": 2}
            admin.create_acls([GRANT])  # ACLs are level 2
            with pytest.raises(UnsupportedVersionError, match="client quotas need .* 3"):
                admin.alter_client_quotas([ClientQuotaAlteration({"user": "a"},
                                                                 {"producer_byte_rate": 1e6})])
            upgraded = CliRunner().invoke(cli, ["features", "upgrade", "--metadata-version", "3",
                                                "-b", cluster.bootstrap_servers])
            assert upgraded.exit_code == 0, upgraded.output
            assert "metadata.version was upgraded to 3" in upgraded.output
            admin.alter_client_quotas([ClientQuotaAlteration({"user": "a"},
                                                             {"producer_byte_rate": 1e6})])
            assert admin.describe_acls(AclBindingFilter()) == [GRANT]
            with pytest.raises(RilletError, match="downgrade"):
                admin.update_features({"metadata.version": 1})
            fm = admin.describe_features()
            assert (fm.finalized, fm.supported, fm.brokers) == (
                {"metadata.version": 3}, {"metadata.version": (1, 3)}, {1: (1, 3)})
    finally:
        cluster.stop(timeout_s=15)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_old_broker_blocks_the_level_until_it_is_upgraded(tmp_path, monkeypatch):
    configs = {**TEST_BROKER_CONFIGS, **FAST_CLUSTER_CONFIGS,
               "authorizer.class.name": "rillet", "super.users": "User:ANONYMOUS",
               "bootstrap.metadata.version": "1"}
    monkeypatch.setenv(ENV_CAP, "3:1")  # broker 3 is of an older release
    cluster = LocalCluster(tmp_path / "cluster", 3, configs)
    try:
        cluster.start(timeout_s=90)
        settings = {"bootstrap.servers": cluster.bootstrap_servers, "request.timeout.ms": 30000}
        with Admin(settings) as admin:
            fm = admin.describe_features()
            assert fm.finalized["metadata.version"] == 1
            assert fm.brokers == {1: (1, 3), 2: (1, 3), 3: (1, 1)}
            assert fm.supported["metadata.version"] == (1, 1)
            with pytest.raises(RilletError, match="broker 3 supports 1-1"):
                admin.update_features({"metadata.version": 2})
            with pytest.raises(UnsupportedVersionError, match="ACLs need metadata.version 2"):
                admin.create_acls([GRANT])
            assert admin.describe_acls(AclBindingFilter()) == []

            # the CLI says the same
            env = cli_env(tmp_path)
            refused = run(["features", "upgrade", "--metadata-version", "3",
                           "-b", cluster.bootstrap_servers], env, check=False)
            assert refused.returncode != 0
            assert b"broker 3 supports 1-1" in refused.stdout + refused.stderr

            # broker 3 is upgraded: restarted with the new code (no cap)
            monkeypatch.delenv(ENV_CAP)
            cluster.stop_broker(3)
            cluster.start_broker(3)
            cluster.wait_ready(timeout_s=60, broker_ids=[3])
            _wait_for("broker 3 to register its new range",
                      lambda: admin.describe_features().brokers.get(3) == (1, 3))
            done = run(["features", "upgrade", "--metadata-version", "3",
                        "-b", cluster.bootstrap_servers], env)
            assert b"metadata.version was upgraded to 3" in done.stdout
            shown = run(["features", "describe", "-b", cluster.bootstrap_servers], env)
            assert b"SupportedMaxVersion: 3\tFinalizedVersionLevel: 3" in shown.stdout
            admin.create_acls([GRANT])
            # DescribeAcls is answered from the asked broker's image: it may lag a moment
            _wait_for("the ACL in the image", lambda: admin.describe_acls(
                AclBindingFilter()) == [GRANT])
            with pytest.raises(RilletError, match="downgrade"):
                admin.update_features({"metadata.version": 2})

        # an old broker started against the upgraded cluster stops at the first record it
        # cannot read, saying which and why; it never skips it
        monkeypatch.setenv(ENV_CAP, "3:1")
        cluster.stop_broker(3)
        cluster.start_broker(3)
        _wait_for("the old broker 3 to stop", lambda: cluster.pid(3) is None)
        tail = cluster.stderr_tail(3, lines=40)
        assert "STOPPING: metadata log entry" in tail
        assert "AccessControlEntryRecord needs metadata.version 2" in tail
    finally:
        cluster.stop(timeout_s=15)
