"""LocalCluster: run N broker processes on this machine, as ``rillet cluster up`` does.

    from rillet.launcher import LocalCluster

    cluster = LocalCluster(Path("/tmp/rillet"), brokers=1)
    cluster.start()                      # returns once every broker answers ApiVersions
    print(cluster.bootstrap_servers)     # "127.0.0.1:40123"
    cluster.kill(1); cluster.start_broker(1); cluster.wait_ready()
    cluster.stop()                       # SIGTERM, then SIGKILL after the timeout

Layout of ``data_dir``: ``cluster.json`` (broker ids, their loopback ports and the broker
configs, so a restart reuses them) and one ``broker-<id>/`` data dir per broker, holding the
broker's own files plus ``broker.pid`` and ``stderr.log`` written by the launcher. Brokers
are detached processes (their own session), so the process that started them may exit and a
later ``LocalCluster`` on the same dir can stop them (it finds them by pid file, checking the
command line so a recycled pid is never signalled).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import TransportError
from rillet.transport.protocol import ApiVersionsRequest

HOST = "127.0.0.1"
CLUSTER_FILE = "cluster.json"


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    broker_id: int
    address: str
    pid: int | None  # None: not running
    ready: bool  # answered ApiVersions just now
    data_dir: Path


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalCluster:
    """Broker processes sharing ``data_dir``. Not thread-safe; one owner drives it."""

    def __init__(
        self, data_dir: Path, brokers: int = 1, configs: dict[str, str] | None = None
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._children: dict[int, subprocess.Popen] = {}
        saved = self._load()
        ports = {int(k): v for k, v in saved.get("ports", {}).items()}
        for broker_id in range(1, brokers + 1):
            if broker_id not in ports:
                ports[broker_id] = free_port()
        self.ports: dict[int, int] = dict(sorted(ports.items()))
        self.configs: dict[str, str] = {**saved.get("configs", {}), **(configs or {})}
        self._save()

    # --------------------------------------------------------------------------- state

    def _load(self) -> dict:
        path = self.data_dir / CLUSTER_FILE
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        path = self.data_dir / CLUSTER_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"ports": {str(k): v for k, v in self.ports.items()}, "configs": self.configs},
                indent=2,
            )
        )
        os.replace(tmp, path)

    @property
    def broker_ids(self) -> list[int]:
        return list(self.ports)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.address(b) for b in self.ports)

    def address(self, broker_id: int) -> str:
        return f"{HOST}:{self.ports[broker_id]}"

    def broker_dir(self, broker_id: int) -> Path:
        return self.data_dir / f"broker-{broker_id}"

    def _pid_file(self, broker_id: int) -> Path:
        return self.broker_dir(broker_id) / "broker.pid"

    def pid(self, broker_id: int) -> int | None:
        """The pid of the running broker process, or None."""
        child = self._children.get(broker_id)
        if child is not None:
            return child.pid if child.poll() is None else None
        try:
            pid = int(self._pid_file(broker_id).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if self._is_our_broker(pid, broker_id) else None

    def _is_our_broker(self, pid: int, broker_id: int) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return (
            state != "Z"
            and b"rillet.actors.node" in cmdline
            and str(self.broker_dir(broker_id)).encode() in cmdline
        )

    # ------------------------------------------------------------------------- running

    def start(self, timeout_s: float = 30.0) -> None:
        """Start every broker that is not running, then wait until all are ready."""
        for broker_id in self.ports:
            if self.pid(broker_id) is None:
                self.start_broker(broker_id)
        self.wait_ready(timeout_s)

    def start_broker(self, broker_id: int) -> int:
        """Launch one broker process (detached); returns its pid. Does not wait for it."""
        if broker_id not in self.ports:
            self.ports[broker_id] = free_port()
            self._save()
        running = self.pid(broker_id)
        if running is not None:
            return running
        directory = self.broker_dir(broker_id)
        directory.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "rillet.actors.node",
            "--broker-id",
            str(broker_id),
            "--data-dir",
            str(directory),
            "--listen",
            self.address(broker_id),
        ]
        for key, value in sorted(self.configs.items()):
            cmd += ["--config", f"{key}={value}"]
        with open(directory / "stderr.log", "ab") as err:
            child = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        self._children[broker_id] = child
        self._pid_file(broker_id).write_text(f"{child.pid}\n")
        return child.pid

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Poll ApiVersions until every running broker answers. ``TimeoutError`` (with the
        tail of the broker's stderr) if one does not, ``RuntimeError`` if one exited."""
        deadline = time.monotonic() + timeout_s
        pending = set(self.ports)
        with ClientEndpoint() as endpoint:
            while pending:
                for broker_id in sorted(pending):
                    if self.pid(broker_id) is None:
                        raise RuntimeError(
                            f"broker {broker_id} is not running:\n{self.stderr_tail(broker_id)}"
                        )
                    if self._ping(endpoint, broker_id, 300):
                        pending.discard(broker_id)
                if pending and time.monotonic() > deadline:
                    ids = sorted(pending)
                    raise TimeoutError(
                        f"brokers {ids} not ready after {timeout_s} s:\n{self.stderr_tail(ids[0])}"
                    )

    def _ping(self, endpoint: ClientEndpoint, broker_id: int, timeout_ms: int) -> bool:
        future = endpoint.request(self.address(broker_id), ApiVersionsRequest(), timeout_ms)
        try:
            future.result(timeout_ms / 1000 + 1)
            return True
        except (TransportError, TimeoutError):
            return False

    def stderr_tail(self, broker_id: int, lines: int = 15) -> str:
        try:
            text = (self.broker_dir(broker_id) / "stderr.log").read_text(errors="replace")
        except OSError:
            return "(no stderr.log)"
        return "\n".join(text.splitlines()[-lines:])

    def status(self) -> list[BrokerStatus]:
        out = []
        with ClientEndpoint() as endpoint:
            for broker_id in self.ports:
                pid = self.pid(broker_id)
                ready = pid is not None and self._ping(endpoint, broker_id, 1000)
                out.append(
                    BrokerStatus(
                        broker_id, self.address(broker_id), pid, ready, self.broker_dir(broker_id)
                    )
                )
        return out

    # ------------------------------------------------------------------------- stopping

    def kill(self, broker_id: int) -> None:
        """SIGKILL one broker (a crash) and wait until it is gone."""
        pid = self.pid(broker_id)
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(broker_id, pid, 10.0)
        self._forget(broker_id)

    def stop_broker(self, broker_id: int, timeout_s: float = 15.0) -> None:
        """SIGTERM (graceful: flush + clean-shutdown markers), SIGKILL after ``timeout_s``."""
        pid = self.pid(broker_id)
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(broker_id, pid, timeout_s):
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(broker_id, pid, 10.0)
        self._forget(broker_id)

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop every broker (in parallel: all get SIGTERM first)."""
        pids = {b: self.pid(b) for b in self.ports}
        for pid in pids.values():
            if pid is not None:
                self._signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for broker_id, pid in pids.items():
            if pid is not None and not self._wait_gone(
                broker_id, pid, max(0.1, deadline - time.monotonic())
            ):
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(broker_id, pid, 10.0)
            self._forget(broker_id)

    def _signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _wait_gone(self, broker_id: int, pid: int, timeout_s: float) -> bool:
        child = self._children.get(broker_id)
        if child is not None and child.pid == pid:
            try:
                child.wait(timeout_s)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._is_our_broker(pid, broker_id):
                return True
            time.sleep(0.05)
        return False

    def _forget(self, broker_id: int) -> None:
        self._children.pop(broker_id, None)
        with contextlib.suppress(OSError):
            self._pid_file(broker_id).unlink()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
