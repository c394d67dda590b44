"""``rillet broker start --config server.properties``: real broker processes started the way
an operator starts them on each host, with Kafka's keys; ``listeners`` binds one address and
``advertised.listeners`` is what clients and the other brokers are told (docs/operations.md).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rillet import Admin, Consumer, Producer
from rillet.records import NewTopic, TopicPartition
from tests.support import FAST_CLUSTER_CONFIGS, wait_until

RILLET = [sys.executable, "-m", "rillet.cli.main"]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def brokers(tmp_path: Path):
    procs: list[subprocess.Popen] = []

    def start(config: Path, *overrides: str) -> subprocess.Popen:
        args = [*RILLET, "broker", "start", "--config", str(config)]
        for o in overrides:
            args += ["-c", o]
        log = open(config.with_suffix(".log"), "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "HOME": str(tmp_path)})
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.mark.timeout(120)
def test_two_brokers_from_server_properties_advertise_the_advertised_listeners(
    tmp_path: Path, brokers
) -> None:
    # bound on 127.0.0.1, advertised as "localhost": Metadata, the registrations and the
    # voters must carry "localhost", never the bound address
    c1, b1, c2, b2 = _free_ports(4)
    voters = f"1@localhost:{b1},2@localhost:{b2}"
    fast = [f"{k}={v}" for k, v in FAST_CLUSTER_CONFIGS.items()]
    configs = []
    for node, (cp, bp) in enumerate(((c1, b1), (c2, b2)), 1):
        configs.append(_write(tmp_path / f"server{node}.properties", [
            "# a Kafka-style file: comments, ':' separators, a continuation line",
            f"node.id={node}",
            "process.roles=broker,controller",
            f"controller.quorum.voters={voters}",
            f"listeners=CLIENT://127.0.0.1:{cp},\\",
            f"    BROKER://127.0.0.1:{bp}",
            f"advertised.listeners: CLIENT://localhost:{cp},BROKER://localhost:{bp}",
            f"log.dirs={tmp_path / f'data{node}'}",
            "log.retention.hours=1",
            *fast,
        ]))
    procs = [brokers(c) for c in configs]
    bootstrap = f"127.0.0.1:{c1}"
    with Admin(bootstrap_servers=bootstrap) as admin:
        def both_registered():
            try:
                d = admin.describe_cluster()
            except Exception:  # noqa: BLE001 - not up yet
                return None
            return d if d.controller_id >= 0 and len(d.brokers) == 2 else None

        desc = wait_until(both_registered, 60, "both brokers registered")
        assert {(b.broker_id, b.host, b.port) for b in desc.brokers} == {
            (1, "localhost", c1), (2, "localhost", c2)}
        admin.create_topics([NewTopic("adv", 1, 2)])
        cfg = admin.describe_configs(["adv"])["adv"]
        assert cfg["retention.ms"].value == str(3_600_000)  # log.retention.hours=1
    with Producer(bootstrap_servers=bootstrap, acks="all") as producer:
        producer.send("adv", b"across").get(30)
    with Consumer({"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest"}) as c:
        c.assign([TopicPartition("adv", 0)])
        got = wait_until(lambda: c.poll(500).get(TopicPartition("adv", 0)), 30, "the record")
        assert [r.value for r in got] == [b"across"]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    assert [p.wait(30) for p in procs] == [0, 0]


def test_a_wrong_file_gets_one_line_per_problem_and_no_broker(tmp_path: Path) -> None:
    config = _write(tmp_path / "server.properties", [
        "node.id=one",
        "log.retension.ms=1000",
        "listeners=CLIENT://0.0.0.0:9092",
        "controller.listener.names=CONTROLLER",
    ])
    out = subprocess.run([*RILLET, "broker", "start", "--config", str(config)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert any("'log.retension.ms'; did you mean 'log.retention.ms'?" in x for x in lines)
    assert any("node.id='one' is not an integer" in x for x in lines)
    assert any("log.dirs is missing" in x for x in lines)
    assert any("controller.listener.names: not used by rillet" in x for x in lines)
    assert len(lines) == 4, lines


def test_a_wildcard_bind_without_an_advertised_address_is_refused(tmp_path: Path) -> None:
    config = _write(tmp_path / "server.properties", [
        "node.id=1", f"log.dirs={tmp_path / 'd'}", "listeners=CLIENT://0.0.0.0:0",
    ])
    out = subprocess.run([*RILLET, "broker", "start", "--config", str(config)],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 2
    assert "binds the wildcard host '0.0.0.0'" in out.stderr
    assert not (tmp_path / "d").exists()
