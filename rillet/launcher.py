"""LocalCluster: run N broker processes on this machine, as ``rillet cluster up`` does.

    from rillet.launcher import LocalCluster

    cluster = LocalCluster(Path("/tmp/rillet"), brokers=3)
    cluster.start()                      # returns once every broker is registered
    print(cluster.bootstrap_servers)     # "127.0.0.1:40123"
    cluster.kill(1); cluster.start_broker(1); cluster.wait_ready()
    cluster.stop()                       # SIGTERM, then SIGKILL after the timeout

The first three brokers (all of them if fewer) are the controller quorum's voters
(``controller.quorum.voters``, combined mode); the others follow the metadata log.

With ``kafka=True`` (what ``rillet cluster up`` passes) each broker also serves Kafka's wire
protocol on a third loopback port (``listeners=KAFKA://127.0.0.1:PORT`` unless the configs
name ``listeners``; never on a cluster whose clients must authenticate with CURVE);
``kafka_bootstrap_servers`` is Kafka clients' ``bootstrap.servers``.

Each broker has two loopback ports: its client listener (``address``, what clients and
``bootstrap_servers`` use) and its inter-broker listener (``internal_address``; the
``controller.quorum.voters`` addresses). The inter-broker listeners use CURVE with one key
pair per cluster, ``cluster.curve`` in ``data_dir`` (created once, mode 0600; passed to every
broker as ``inter.broker.curve.keyfile`` unless the configs name another file).

Layout of ``data_dir``: ``cluster.json`` (broker ids, their loopback ports, the voters and the
broker configs, so a restart reuses them), ``cluster.curve`` and one ``broker-<id>/`` data dir
per broker, holding the
broker's own files plus ``broker.pid`` and ``stderr.log`` written by the launcher. Brokers
are detached processes (their own session), so the process that started them may exit and a
later ``LocalCluster`` on the same dir can stop them (it finds them by pid file, checking the
command line so a recycled pid is never signalled).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rillet.frozen import frozen
from rillet.security import admin_client_settings, endpoint_options, secure_cluster_configs
from rillet.transport.endpoint import ClientEndpoint
from rillet.transport.errors import TransportError
from rillet.transport.protocol import MetadataRequest
from rillet.transport.security import curve_available, generate_keyfile

HOST = "127.0.0.1"
CLUSTER_FILE = "cluster.json"
KEY_FILE = "cluster.curve"
MAX_VOTERS = 3


@frozen
class BrokerStatus:
    broker_id: int
    address: str
    pid: int | None  # None: not running
    ready: bool  # answered just now, registered and unfenced, knows the active controller
    data_dir: Path
    voter: bool = False  # one of the controller quorum's voters
    controller_id: int = -1  # the active controller as this broker sees it
    fenced: bool = False  # running, but not a live broker in the cluster metadata
    leader_of: tuple[str, ...] = ()  # "topic-partition" it leads


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port(host: str = HOST) -> int:
    """A port free now, chosen below the kernel's ephemeral range when there is room: ports
    are reserved in cluster.json long before a broker binds them, and an ephemeral port
    (any outgoing connection, e.g. a peer already reconnecting to that broker) must not
    take it meanwhile."""
    low, _high = _ephemeral_range()
    if low > 11000:
        rng = random.Random()
        for _ in range(50):
            port = rng.randrange(10000, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            if _reserve(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_RESERVED = Path(tempfile.gettempdir()) / "rillet-ports"
_RESERVATION_S = 3600


def _reserve(port: int) -> bool:
    """Claim ``port`` for an hour among every process of this machine that picks ports here:
    a port chosen now is bound only when its broker starts (or restarts), and two clusters
    starting at once (parallel test workers) once chose the same one in that window. False
    if another claimed it within the hour; True if the claim cannot be written at all."""
    path = _RESERVED / str(port)
    try:
        _RESERVED.mkdir(exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - path.stat().st_mtime < _RESERVATION_S:
                return False
            os.utime(path)  # an old claim: take it over
            return True
        except OSError:
            return False
    except OSError:
        return True  # no shared directory: the bind check alone, as before
    os.close(fd)
    return True


class LocalCluster:
    """Broker processes sharing ``data_dir``. Not thread-safe; one owner drives it."""

    def __init__(
        self,
        data_dir: Path,
        brokers: int = 1,
        configs: dict[str, str] | None = None,
        *,
        secure: bool = False,
        kafka: bool = False,
        tls: bool = False,
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
        # an older cluster.json has no internal ports: allocate them now (and save)
        internal = {int(k): v for k, v in saved.get("internal_ports", {}).items()}
        self.internal_ports: dict[int, int] = {
            b: internal.get(b) or free_port() for b in self.ports
        }
        self.voters: list[int] = saved.get("voters") or list(self.ports)[:MAX_VOTERS]
        self.configs: dict[str, str] = {**saved.get("configs", {}), **(configs or {})}
        # each broker's Prometheus port (docs/metrics.md), unless metrics.port is configured
        saved_metrics = {int(k): v for k, v in saved.get("metrics_ports", {}).items()}
        self.metrics_ports: dict[int, int] = {
            b: saved_metrics.get(b) or free_port() for b in self.ports
        }
        self._ensure_keyfile()
        if secure:  # CURVE on the client listener too (rillet/security.py)
            secured = secure_cluster_configs(self.data_dir)
            for key in ("super.users", "listener.security.protocol.map",
                        "sasl.enabled.mechanisms"):
                if key in (configs or {}) or (key == "super.users" and key in self.configs):
                    secured.pop(key, None)  # the user's own choice wins
            self.configs.update(secured)
        if tls:  # TLS on the KAFKA listener: SASL_SSL (--secure) or SSL (rillet/tls_certs.py)
            from rillet.tls_certs import tls_cluster_configs

            self.configs.update(tls_cluster_configs(self.data_dir, secure))
        # each broker's KAFKA listener (docs/kafka-compat.md), once enabled: kept in
        # cluster.json. Beside a CURVE client listener only with SASL (--secure sets it:
        # rillet/security.py), never as a door around the authentication.
        saved_kafka = {int(k): v for k, v in saved.get("kafka_ports", {}).items()}
        self.kafka_ports: dict[int, int] = (
            {b: saved_kafka.get(b) or free_port() for b in self.ports}
            if (kafka or saved_kafka) and (not self.configs.get("client.curve.keyfile")
                                           or "SASL_" in self.configs.get(
                                               "listener.security.protocol.map", ""))
            else {}
        )
        self._save()

    @property
    def client_security(self) -> dict[str, str]:
        """The admin's client settings (``security.*``, empty for a plaintext cluster)."""
        return admin_client_settings(self.configs, self.data_dir)

    @property
    def kafka_client_settings(self) -> dict[str, str]:
        """The admin's settings for Kafka clients of a SASL KAFKA listener (else empty)."""
        from rillet.security import kafka_client_settings

        return kafka_client_settings(self.configs, self.data_dir) if self.kafka_ports else {}

    def _client_endpoint(self) -> ClientEndpoint:
        return ClientEndpoint(**endpoint_options(self.client_security))

    def _ensure_keyfile(self) -> None:
        """The cluster's CURVE key pair for the inter-broker listeners, made once."""
        if "inter.broker.curve.keyfile" in self.configs or not curve_available():
            return
        path = self.data_dir / KEY_FILE
        if not path.exists():
            generate_keyfile(path)

    @property
    def keyfile(self) -> Path | None:
        """The inter-broker CURVE key file the brokers use (None: plain inter-broker TCP)."""
        named = self.configs.get("inter.broker.curve.keyfile")
        if named is not None:
            return Path(named) if named else None
        path = self.data_dir / KEY_FILE
        return path if path.exists() else None

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
                {
                    "ports": {str(k): v for k, v in self.ports.items()},
                    "internal_ports": {str(k): v for k, v in self.internal_ports.items()},
                    "metrics_ports": {str(k): v for k, v in self.metrics_ports.items()},
                    **({"kafka_ports": {str(k): v for k, v in self.kafka_ports.items()}}
                       if self.kafka_ports else {}),
                    "voters": self.voters,
                    "configs": self.configs,
                },
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
        """The broker's client listener (its public address)."""
        return f"{HOST}:{self.ports[broker_id]}"

    def metrics_url(self, broker_id: int) -> str | None:
        """Where ``broker_id`` serves Prometheus metrics; None when they are off."""
        port = int(self.configs.get("metrics.port", self.metrics_ports.get(broker_id, -1)))
        return None if port <= 0 else f"http://{HOST}:{port}/metrics"

    @property
    def metrics_urls(self) -> dict[int, str]:
        return {b: u for b in self.ports if (u := self.metrics_url(b)) is not None}

    def kafka_address(self, broker_id: int) -> str | None:
        """Where ``broker_id`` serves Kafka's protocol, as the broker wrote it at start
        (``kafka-listener`` in its data dir; None: no KAFKA listener)."""
        try:
            return (self.broker_dir(broker_id) / "kafka-listener").read_text().strip() or None
        except OSError:
            return None

    @property
    def kafka_bootstrap_servers(self) -> str:
        """``bootstrap.servers`` for Kafka clients ('' when no broker has a KAFKA listener)."""
        return ",".join(a for b in self.ports if (a := self.kafka_address(b)))

    def internal_address(self, broker_id: int) -> str:
        """The broker's inter-broker listener."""
        return f"{HOST}:{self.internal_ports[broker_id]}"

    @property
    def quorum_voters(self) -> str:
        """``controller.quorum.voters`` of this cluster: ``1@127.0.0.1:PORT,...``, the
        voters' inter-broker listeners."""
        return ",".join(f"{b}@{self.internal_address(b)}" for b in self.voters if b in self.ports)

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
        if broker_id not in self.ports or broker_id not in self.internal_ports:
            self.ports.setdefault(broker_id, free_port())
            self.internal_ports.setdefault(broker_id, free_port())
            self.metrics_ports.setdefault(broker_id, free_port())
            if self.kafka_ports:
                self.kafka_ports.setdefault(broker_id, free_port())
            self._save()
        running = self.pid(broker_id)
        if running is not None:
            return running
        directory = self.broker_dir(broker_id)
        directory.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-P",  # not the working directory first: a clone's root holds a rillet/ folder
            "-m",  # that is not the installed package (README's first command, from a clone)
            "rillet.actors.node",
            "--broker-id",
            str(broker_id),
            "--data-dir",
            str(directory),
            "--listen",
            self.address(broker_id),
            "--internal-listen",
            self.internal_address(broker_id),
        ]
        configs = {
            "controller.quorum.voters": self.quorum_voters,
            "metrics.port": str(self.metrics_ports.get(broker_id, -1)),
            **self.configs,
        }
        if self.keyfile is not None:
            configs["inter.broker.curve.keyfile"] = str(self.keyfile)
        if self.kafka_ports and "listeners" not in configs:  # a configured one wins
            configs["listeners"] = f"KAFKA://{HOST}:{self.kafka_ports[broker_id]}"
        (directory / "kafka-listener").unlink(missing_ok=True)  # rewritten if it has one
        for key, value in sorted(configs.items()):
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

    def wait_ready(self, timeout_s: float = 30.0, broker_ids=None) -> None:
        """Poll every broker (default: all) until it is registered and unfenced and knows the
        active controller. ``TimeoutError`` (with the tail of the broker's stderr) if one is
        not, ``RuntimeError`` if one exited."""
        deadline = time.monotonic() + timeout_s
        pending = set(self.ports if broker_ids is None else broker_ids)
        with self._client_endpoint() as endpoint:
            while pending:
                for broker_id in sorted(pending):
                    if self.pid(broker_id) is None:
                        raise RuntimeError(
                            f"broker {broker_id} is not running:\n{self.stderr_tail(broker_id)}"
                        )
                    if self._ready(self._probe(endpoint, broker_id, 300), broker_id):
                        pending.discard(broker_id)
                if pending and time.monotonic() > deadline:
                    ids = sorted(pending)
                    raise TimeoutError(
                        f"brokers {ids} not ready after {timeout_s} s:\n{self.stderr_tail(ids[0])}"
                    )
                if pending:
                    time.sleep(0.05)

    def _probe(self, endpoint: ClientEndpoint, broker_id: int, timeout_ms: int, topics=()):
        """The broker's MetadataResponse (``topics=None``: every topic), or None."""
        request = MetadataRequest(topics=topics)
        future = endpoint.request(self.address(broker_id), request, timeout_ms)
        try:
            return future.result(timeout_ms / 1000 + 1)
        except (TransportError, TimeoutError):
            return None

    @staticmethod
    def _ready(meta, broker_id: int) -> bool:
        return (
            meta is not None
            and meta.controller_id >= 0
            and any(b.broker_id == broker_id for b in meta.brokers)
        )

    def controller_id(self, timeout_ms: int = 1000) -> int:
        """The active controller as the running brokers see it (-1 if none agrees on one)."""
        with self._client_endpoint() as endpoint:
            for broker_id in self.ports:
                if self.pid(broker_id) is None:
                    continue
                meta = self._probe(endpoint, broker_id, timeout_ms)
                if meta is not None and meta.controller_id >= 0:
                    return meta.controller_id
        return -1

    def stderr_tail(self, broker_id: int, lines: int = 15) -> str:
        try:
            text = (self.broker_dir(broker_id) / "stderr.log").read_text(errors="replace")
        except OSError:
            return "(no stderr.log)"
        return "\n".join(text.splitlines()[-lines:])

    def status(self) -> list[BrokerStatus]:
        """Each broker as it sees itself, plus what it leads per the active controller."""
        metas = {}
        with self._client_endpoint() as endpoint:
            for broker_id in self.ports:
                if self.pid(broker_id) is not None:
                    metas[broker_id] = self._probe(endpoint, broker_id, 1000, topics=None)
        controllers = [m.controller_id for m in metas.values() if m and m.controller_id >= 0]
        active = max(set(controllers), key=controllers.count) if controllers else -1
        view = metas.get(active) or next((m for m in metas.values() if m), None)
        led: dict[int, list[str]] = {}
        live: set[int] = set()
        if view is not None:
            live = {b.broker_id for b in view.brokers}
            for t in view.topics:
                for pm in t.partitions:
                    led.setdefault(pm.leader, []).append(f"{t.name}-{pm.partition}")
        out = []
        for broker_id in self.ports:
            pid = self.pid(broker_id)
            meta = metas.get(broker_id)
            out.append(
                BrokerStatus(
                    broker_id,
                    self.address(broker_id),
                    pid,
                    self._ready(meta, broker_id),
                    self.broker_dir(broker_id),
                    voter=broker_id in self.voters,
                    controller_id=meta.controller_id if meta else -1,
                    fenced=pid is not None and meta is not None and broker_id not in live,
                    leader_of=tuple(sorted(led.get(broker_id, ()))),
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
