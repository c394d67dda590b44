"""LocalCluster's KAFKA listeners (rillet/launcher.py; `rillet cluster up` passes kafka=True):
ports chosen once and kept in cluster.json, the listener given to each broker's command line,
and never beside a CURVE client listener. No broker is started: Popen is replaced."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rillet import launcher
from rillet.launcher import LocalCluster


@pytest.fixture
def launched(monkeypatch):
    """The command lines LocalCluster would run."""
    cmds: list[list[str]] = []

    def popen(cmd, **_kw):
        cmds.append(cmd)
        return SimpleNamespace(pid=999_999_999, poll=lambda: None)

    monkeypatch.setattr(launcher.subprocess, "Popen", popen)
    return cmds


def _configs(cmd: list[str]) -> dict[str, str]:
    pairs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--config"]
    return dict(p.split("=", 1) for p in pairs)


def test_kafka_ports_are_chosen_once_and_passed_as_listeners(tmp_path, launched) -> None:
    cluster = LocalCluster(tmp_path, brokers=2, kafka=True)
    ports = dict(cluster.kafka_ports)
    assert sorted(ports) == [1, 2] and len(set(ports.values()) | set(cluster.ports.values())) == 4
    assert LocalCluster(tmp_path, brokers=0).kafka_ports == ports  # a restart: the same ports
    cluster.start_broker(1)
    assert _configs(launched[0])["listeners"] == f"KAFKA://127.0.0.1:{ports[1]}"
    (tmp_path / "broker-1" / "kafka-listener").write_text(f"127.0.0.1:{ports[1]}\n")
    assert cluster.kafka_bootstrap_servers == f"127.0.0.1:{ports[1]}"  # what broker 1 wrote
    cluster.start_broker(3)  # a new broker gets its own port too
    assert _configs(launched[1])["listeners"] == f"KAFKA://127.0.0.1:{cluster.kafka_ports[3]}"
    cluster._children.clear()


def test_configured_listeners_win_and_off_by_default(tmp_path, launched) -> None:
    LocalCluster(tmp_path / "a", brokers=1, configs={"listeners": "KAFKA://127.0.0.1:0"},
                 kafka=True).start_broker(1)
    assert _configs(launched[0])["listeners"] == "KAFKA://127.0.0.1:0"
    plain = LocalCluster(tmp_path / "b", brokers=1)
    plain.start_broker(1)
    assert plain.kafka_ports == {} and "listeners" not in _configs(launched[1])
    assert plain.kafka_bootstrap_servers == ""


def test_beside_a_curve_client_listener_only_with_sasl(tmp_path) -> None:
    pytest.importorskip("zmq.auth")
    from rillet.transport.security import curve_available

    if not curve_available():
        pytest.skip("libzmq without CURVE")
    LocalCluster(tmp_path, brokers=1, kafka=True)  # plaintext first: ports saved
    secure = LocalCluster(tmp_path, brokers=0, secure=True, kafka=True)
    assert secure.kafka_ports  # --secure: a SASL_PLAINTEXT KAFKA listener
    assert secure.configs["listener.security.protocol.map"] == "KAFKA:SASL_PLAINTEXT"
    settings = secure.kafka_client_settings
    assert settings["security.protocol"] == "SASL_PLAINTEXT" and settings["sasl.password"]
    assert settings["sasl.password"] not in secure.configs["sasl.scram.bootstrap.users"]
    # CURVE configured by hand without SASL: no KAFKA door around the authentication
    keyed = {k: secure.configs[k] for k in ("client.curve.keyfile", "client.curve.bootstrap.users")}
    other = LocalCluster(tmp_path / "other", brokers=1, configs=keyed, kafka=True)
    assert other.kafka_ports == {}


def test_a_broker_never_imports_from_the_working_directory(tmp_path, launched) -> None:
    """`rillet cluster up` from a clone's root, with rillet installed as a regular package
    (the README's first command): `python -m` would put the clone's rillet/ folder (not the
    package) first on sys.path; -P keeps the working directory out
    (tests/integration/test_install_beside_clone.py runs it for real, slow)."""
    import sys

    LocalCluster(tmp_path, brokers=1).start_broker(1)
    assert launched[0][:4] == [sys.executable, "-P", "-m", "rillet.actors.node"]
