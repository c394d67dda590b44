"""The real ``rillet`` command line, run as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.cli_helpers import RILLET, cli_env, run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def env(tmp_path: Path):
    return cli_env(tmp_path)


@pytest.fixture
def local_cluster(env, tmp_path: Path):
    """`rillet cluster up --detach` in tmp_path; always `cluster down` at the end."""
    data = tmp_path / "home"
    try:
        up = run(["cluster", "up", "--brokers", "1", "--detach",
                  "-c", "log.retention.check.interval.ms=500"], env)
        yield up
    finally:
        subprocess.run([*RILLET, "cluster", "down", "--data-dir", str(data)], env=env,
                       capture_output=True, timeout=60)
        from rillet.launcher import LocalCluster

        LocalCluster(data, brokers=0).stop()  # belt and braces if `down` failed


def test_cluster_up_status_down_and_profile(env, local_cluster, tmp_path) -> None:
    out = local_cluster.stdout.decode()
    assert "Cluster started!" in out and "running" in out
    export = [line for line in out.splitlines() if line.startswith("export RILLET_BROKERS=")]
    brokers = export[0].split("=", 1)[1]
    profile = json.loads((tmp_path / "config" / "profile.json").read_text())
    assert profile["brokers"] == brokers
    assert "    rillet topic create orders -p 3\n" in out  # the hint needs no -b either
    status = run(["cluster", "status"], env).stdout.decode()
    assert "running" in status and brokers in status
    # the profile makes -b unnecessary; -b and RILLET_BROKERS work too
    assert run(["topic", "create", "t1"], env).stdout == b"Created topic t1.\n"
    assert b"t1" in run(["topic", "list", "-b", brokers], env).stdout
    assert b"t1" in run(["topic", "list"], {**env, "RILLET_BROKERS": brokers}).stdout
    down = run(["cluster", "down"], env).stdout.decode()
    assert "Stopped 1 broker" in down
    assert not (tmp_path / "config" / "profile.json").exists()
    stopped = run(["cluster", "status"], env, check=False)
    assert stopped.returncode == 1 and "stopped" in stopped.stdout.decode()


def test_topic_commands(env, local_cluster) -> None:
    out = run(["topic", "create", "orders", "-p", "3", "-r", "1", "-c", "retention.ms=60000"],
              env)
    assert out.stdout == b"Created topic orders.\n"
    again = run(["topic", "create", "orders", "-p", "3"], env, check=False)
    assert again.returncode == 1 and b"already exists" in again.stderr
    assert b"Traceback" not in again.stderr
    assert run(["topic", "create", "orders", "--if-not-exists"], env).returncode == 0
    desc = run(["topic", "describe", "orders"], env).stdout.decode().splitlines()
    assert desc[0].startswith("Topic: orders\tTopicId: ")
    assert "PartitionCount: 3\tReplicationFactor: 1\tConfigs: retention.ms=60000" in desc[0]
    assert desc[1:] == [f"\tTopic: orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1"
                        for p in range(3)]
    assert run(["topic", "list"], env).stdout.decode().split() == ["orders"]
    alter = run(["topic", "alter", "orders", "-p", "4", "-c", "retention.ms=1000"], env)
    assert b"now has 4 partitions" in alter.stdout and b"Completed updating config" in alter.stdout
    d = json.loads(run(["topic", "describe", "orders", "--format", "json"], env).stdout)
    assert len(d[0]["partitions"]) == 4 and d[0]["configs"] == {"retention.ms": "1000"}
    assert run(["topic", "delete", "orders"], env).stdout == b"Deleted topic orders.\n"
    gone = run(["topic", "describe", "orders"], env, check=False)
    assert gone.returncode == 1
    assert gone.stderr.decode().strip() == "Error: topic 'orders' does not exist"


def test_produce_and_consume_from_the_shell(env, local_cluster) -> None:
    run(["topic", "create", "lines", "-p", "2"], env)
    lines = b"".join(b"k%d:value %d\n" % (i % 3, i) for i in range(50))
    out = run(["produce", "lines", "--property", "parse.key=true", "--property",
               "key.separator=:"], env, input_=lines)
    echoed = out.stdout.decode().splitlines()
    assert len(echoed) == 50
    assert all(line.startswith("Produced to partition ") and " at offset " in line
               for line in echoed)
    got = run(["consume", "lines", "--from-beginning", "-n", "50", "--property",
               "print.key=true"], env)
    assert got.stderr.decode().strip().endswith("Processed a total of 50 messages")
    pairs = sorted(tuple(line.split("\t")) for line in got.stdout.decode().splitlines())
    assert pairs == sorted((f"k{i % 3}", f"value {i}") for i in range(50))
    busy = int(echoed[0].split()[3])  # "Produced to partition P at offset O"
    js = run(["consume", "lines", "-o", "beginning", "-p", str(busy), "-e", "-f", "json"], env)
    records = [json.loads(line) for line in js.stdout.decode().splitlines()]
    assert records and all(r["partition"] == busy for r in records)
    assert [r["offset"] for r in records] == list(range(len(records)))
    assert {r["key"] for r in records} <= {"k0", "k1", "k2"}
    quiet = run(["produce", "lines", "-q", "-p", str(busy)], env, input_=b"x\ny\n")
    assert quiet.stdout == b""
    tail = run(["consume", "lines", "-p", str(busy), "-o", "-2", "-n", "2"], env)
    assert tail.stdout == b"x\ny\n"
    bad = run(["produce", "lines", "--parse-key"], env, input_=b"no separator\n", check=False)
    assert bad.returncode == 1 and b"no key separator" in bad.stderr


def test_perf_commands_print_kafka_lines(env, local_cluster) -> None:
    run(["topic", "create", "bench"], env)
    out = run(["perf", "produce", "--topic", "bench", "--num-records", "20000",
               "--record-size", "100", "--throughput", "-1", "--producer-props", "acks=1",
               "linger.ms=5"], env).stdout.decode().splitlines()
    final = out[-1]
    assert final.startswith("20000 records sent, ") and " records/sec (" in final
    assert final.endswith(" ms 99.9th.") and "ms avg latency" in final
    cons = run(["perf", "consume", "--topic", "bench", "--messages", "20000"], env)
    header, row = cons.stdout.decode().splitlines()
    assert header.startswith("start.time, end.time, data.consumed.in.MB, MB.sec, "
                             "data.consumed.in.nMsg, nMsg.sec")
    fields = row.split(", ")
    assert fields[4] == "20000" and float(fields[2]) == pytest.approx(20000 * 100 / 2**20,
                                                                          rel=1e-3)


def test_errors_are_one_line_with_nonzero_exit(env, tmp_path) -> None:
    nobroker = {**env, "RILLET_BROKERS": "127.0.0.1:1"}
    down = run(["topic", "list", "--timeout-ms", "1000"], nobroker, check=False)
    assert down.returncode == 1
    assert down.stderr.decode().count("\n") == 1 and "connection refused by 127.0.0.1:1" in down.stderr.decode()
    nothing = run(["topic", "list"], env, check=False)
    assert nothing.returncode == 2 and b"rillet cluster up" in nothing.stderr
    badkey = run(["produce", "t", "-X", "lingerms=1", "-b", "127.0.0.1:1"], env,
                 input_=b"", check=False)
    assert badkey.returncode == 1
    assert badkey.stderr.decode().strip() == (
        "Error: unknown config key 'lingerms'; did you mean 'linger.ms'?")
    nocluster = run(["cluster", "status", "--data-dir", str(tmp_path / "none")], env,
                    check=False)
    assert nocluster.returncode == 1 and b"no cluster in" in nocluster.stderr


def test_cluster_up_in_the_foreground_stops_cleanly_on_ctrl_c(env, tmp_path) -> None:
    import signal
    import time

    from rillet.launcher import LocalCluster

    proc = subprocess.Popen([*RILLET, "cluster", "up", "--brokers", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    data = tmp_path / "home"
    try:
        lines = []
        deadline = time.monotonic() + 60
        while not any(line.startswith(b"export RILLET_BROKERS=") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, lines
            lines.append(proc.stdout.readline())
        broker_pid = LocalCluster(data, brokers=0).pid(1)
        assert broker_pid is not None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert b"Cluster stopped." in proc.stderr.read()
        assert LocalCluster(data, brokers=0).pid(1) is None
        assert not (tmp_path / "config" / "profile.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        LocalCluster(data, brokers=0).stop()
