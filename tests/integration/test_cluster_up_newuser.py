"""`rillet cluster up` as a new user runs it (issue #21): the default data dir, a typo in -c
saves nothing, `up` on a running cluster says so, and SIGHUP / Ctrl-C through `| tee` stop
the brokers. Real CLI subprocesses and real broker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rillet.launcher import LocalCluster
from tests.integration.cli_helpers import RILLET, cli_env, run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def env(tmp_path: Path):
    return cli_env(tmp_path)


def wait_for(condition, what: str, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_up_defaults_refuses_a_running_cluster_and_saves_no_typo(env, tmp_path) -> None:
    home = tmp_path / "home"
    # an earlier `up --data-dir` that has since been deleted: `up` must not go back there
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "last-cluster").write_text(f"{tmp_path / 'deleted'}\n")
    try:
        run(["cluster", "up", "-n", "1", "--detach"], env)
        assert (home / "cluster.json").exists()
        assert not (tmp_path / "deleted").exists()
        profile = json.loads((tmp_path / "config" / "profile.json").read_text())
        assert profile["data_dir"] == str(home)
        before = (home / "cluster.json").read_bytes()
        # a command that finds its brokers in the profile names the cluster (on a terminal)
        said = run_on_a_tty(["topic", "list"], env)
        assert f"using the cluster in {home} ({profile['brokers']})" in said, said

        again = run(["cluster", "up", "-n", "1", "--detach"], env, check=False)
        assert again.returncode == 1
        assert b"Cluster started!" not in again.stdout
        assert b"is already running" in again.stderr
        assert LocalCluster(home, brokers=0).pid(1) is not None  # untouched
        run(["cluster", "down"], env)

        typo = run(["cluster", "up", "-n", "1", "--detach", "-c", "log.retention.msx=5"],
                   env, check=False)
        assert typo.returncode == 2
        assert b"did you mean 'log.retention.ms'" in typo.stderr
        assert (home / "cluster.json").read_bytes() == before  # the typo is not saved
        fresh = tmp_path / "fresh"
        typo = run(["cluster", "up", "--data-dir", str(fresh), "-c", "num.partitionz=2"], env,
                   check=False)
        assert typo.returncode == 2 and not (fresh / "cluster.json").exists()
    finally:
        for data in (home, tmp_path / "deleted"):
            if (data / "cluster.json").exists():
                LocalCluster(data, brokers=0).stop()


def run_on_a_tty(args, env) -> str:
    """Run rillet with stderr on a pseudo-terminal; what it wrote there."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([*RILLET, *args], env=env, stdout=subprocess.DEVNULL,
                              stderr=follower, timeout=60)
        os.close(follower)
        follower = -1
        out = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the writer is gone and everything was read
                break
            if not chunk:
                break
            out += chunk
        assert proc.returncode == 0, out
        return out.decode()
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)


def test_a_profile_whose_cluster_is_gone_is_said(env, tmp_path, caplog, monkeypatch) -> None:
    gone = tmp_path / "gone"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "profile.json").write_text(
        json.dumps({"brokers": address, "data_dir": str(gone)}))
    proc = run(["topic", "list"], env, check=False)
    assert proc.returncode == 1
    err = proc.stderr.decode()
    assert f"points at the cluster in {gone} ({address}), which is not running" in err, err
    assert "connection refused" in err
    from rillet import Admin

    monkeypatch.setenv("RILLET_CONFIG_DIR", env["RILLET_CONFIG_DIR"])
    monkeypatch.delenv("RILLET_BROKERS", raising=False)
    with caplog.at_level("WARNING", logger="rillet"):
        Admin().close()  # a Python client configured from the profile warns too
    assert any("which is not running" in r.getMessage() for r in caplog.records)


def test_sighup_stops_the_brokers_of_a_foreground_up(env, tmp_path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen([*RILLET, "cluster", "up", "-n", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        line = b""
        while not line.startswith(b"export RILLET_BROKERS="):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            line = proc.stdout.readline()
        assert LocalCluster(home, brokers=0).pid(1) is not None
        proc.send_signal(signal.SIGHUP)  # the terminal was closed
        assert proc.wait(60) == 0
        assert LocalCluster(home, brokers=0).pid(1) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        LocalCluster(home, brokers=0).stop()


def test_ctrl_c_on_up_piped_to_tee_stops_the_brokers(env, tmp_path) -> None:
    """Ctrl-C signals the whole pipeline: tee dies, so up's stdout is a broken pipe; the
    brokers must stop all the same (Ctrl-C while the brokers start, the likely moment)."""
    home = tmp_path / "home"
    log = tmp_path / "log"
    cmd = " ".join([*RILLET, "cluster", "up", "-n", "1"]) + f" | tee {log}"
    shell = subprocess.Popen(["sh", "-c", cmd], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pid_file = home / "broker-1"
        wait_for(lambda: pid_file.exists() and LocalCluster(home, brokers=0).pid(1), "a broker")
        os.killpg(shell.pid, signal.SIGINT)
        shell.wait(60)
        wait_for(lambda: LocalCluster(home, brokers=0).pid(1) is None, "the broker to stop", 60)
    finally:
        try:
            os.killpg(shell.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if (home / "cluster.json").exists():
            LocalCluster(home, brokers=0).stop()
