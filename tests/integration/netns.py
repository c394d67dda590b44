"""A 3-broker cluster in Linux network namespaces, so a test can cut a broker off the network.

Layout (names unique per test: ``rl<pid>x<n>``; nothing in the root namespace is touched but
creating and deleting these namespaces)::

    <name>br   a bridge ``br0`` and one veth end per member (``v1``..``v3``, ``vc``)
    <name>b1   broker 1 on 10.213.0.1:9092 (``eth0``, the other veth end)
    <name>b2   broker 2 on 10.213.0.2:9092
    <name>b3   broker 3 on 10.213.0.3:9092
    <name>cl   the clients: tests/integration/netns_driver.py on 10.213.0.100

``isolate(b)`` sets broker b's veth end on the bridge down: every packet to or from it is
dropped, while its TCP connections stay open on both sides (a network partition: no FIN, no
RST, nothing). ``heal(b)`` sets it up again. Brokers are started as the launcher starts them
(``python -m rillet.actors.node``, see ``broker_command``), under ``ip netns exec``.

Needs root (``ip netns add``); ``available()`` says why not otherwise, for a skip.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rillet.transport.security import generate_keyfile

SUBNET = "10.213.0"
PORT = 9092  # the client listener
INTERNAL_PORT = 9093  # the inter-broker listener (Raft, replication, heartbeats)
CLIENT_HOST = f"{SUBNET}.100"
_counter = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def available() -> str | None:
    """None if network namespaces can be made here, else the reason they cannot."""
    name = f"rl{os.getpid()}probe"
    try:
        result = _ip("netns", "add", name, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return f"`ip` not usable: {e} (apt-get install -y iproute2)"
    if result.returncode != 0:
        return f"`ip netns add` not permitted here: {result.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return None


class DriverProcess:
    """netns_driver.py in the clients' namespace: ``call(op, **args)`` -> its JSON answer."""

    def __init__(self, namespace: str, log: Path) -> None:
        script = Path(__file__).with_name("netns_driver.py")
        self._stderr = open(log, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def call(self, op: str, timeout_s: float = 60.0, **args) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"driver: no answer to {op} in {timeout_s} s") from None
        if line is None:
            raise RuntimeError(f"driver exited (rc {self.proc.poll()}) during {op}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()


class NetnsCluster:
    """Three brokers (all controller voters) and a client namespace. ``start()``, then
    ``close()`` (always: it stops every process and deletes every namespace)."""

    def __init__(self, data_dir: Path, configs: dict[str, str]) -> None:
        self.data_dir = Path(data_dir)
        self.configs = dict(configs)
        self.name = f"rl{os.getpid()}x{next(_counter)}"
        self.broker_ids = [1, 2, 3]
        self.procs: dict[int, subprocess.Popen] = {}
        self.namespaces: list[str] = []
        self.driver: DriverProcess | None = None

    # ------------------------------------------------------------------------- naming

    def ns(self, member: int | str) -> str:
        return f"{self.name}b{member}" if isinstance(member, int) else f"{self.name}{member}"

    def address(self, broker_id: int) -> str:
        return f"{SUBNET}.{broker_id}:{PORT}"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(self.address(b) for b in self.broker_ids)

    def internal_address(self, broker_id: int) -> str:
        return f"{SUBNET}.{broker_id}:{INTERNAL_PORT}"

    @property
    def quorum_voters(self) -> str:
        return ",".join(f"{b}@{self.internal_address(b)}" for b in self.broker_ids)

    # ------------------------------------------------------------------------ network

    def _exec(self, namespace: str, *cmd: str) -> None:
        _ip("netns", "exec", namespace, *cmd)

    def _make_network(self) -> None:
        bridge = self.ns("br")
        _ip("netns", "add", bridge)
        self.namespaces.append(bridge)
        self._exec(bridge, "ip", "link", "add", "br0", "type", "bridge")
        self._exec(bridge, "ip", "link", "set", "br0", "up")
        members = [(b, f"v{b}", f"{SUBNET}.{b}") for b in self.broker_ids]
        members.append(("cl", "vc", CLIENT_HOST))
        for member, veth, host in members:
            namespace = self.ns(member)
            _ip("netns", "add", namespace)
            self.namespaces.append(namespace)
            self._exec(
                bridge, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                "netns", namespace,
            )  # fmt: skip
            self._exec(bridge, "ip", "link", "set", veth, "master", "br0")
            self._exec(bridge, "ip", "link", "set", veth, "up")
            self._exec(namespace, "ip", "addr", "add", f"{host}/24", "dev", "eth0")
            self._exec(namespace, "ip", "link", "set", "eth0", "up")
            self._exec(namespace, "ip", "link", "set", "lo", "up")

    def isolate(self, broker_id: int, *, abort_connections: bool = False) -> None:
        """Cut ``broker_id`` off: its packets (both ways) are dropped from now on.

        ``abort_connections``: the isolated broker's kernel also gives up on its established
        TCP connections (``ss -K``; the RSTs are lost in the partition), as a host does when
        a TCP user timeout or keepalive fires, or a conntrack/NAT entry is dropped, during a
        long partition. Its peers keep the half-dead other ends: the state in which a broker
        reconnecting with its fixed ZeroMQ identity was never read again (issue #11). Without
        it, Linux keeps the connections through any partition shorter than tcp_retries2
        (~15 min) and they resume when it heals.
        """
        self._exec(self.ns("br"), "ip", "link", "set", f"v{broker_id}", "down")
        if abort_connections:
            self._exec(self.ns(broker_id), "ss", "-K", "-t", "state", "established")

    def heal(self, broker_id: int) -> None:
        self._exec(self.ns("br"), "ip", "link", "set", f"v{broker_id}", "up")

    def drop_incoming(self, broker_id: int) -> None:
        """A one-way partition: ``broker_id`` hears nothing (iptables in its namespace drops
        every packet that arrives on eth0), while what it sends still goes out."""
        self._exec(self.ns(broker_id), "iptables", "-A", "INPUT", "-i", "eth0", "-j", "DROP")

    def accept_incoming(self, broker_id: int) -> None:
        self._exec(self.ns(broker_id), "iptables", "-F", "INPUT")

    def degrade(self, broker_id: int, loss_pct: float, delay_ms: int, jitter_ms: int) -> bool:
        """A lossy, slow link on the broker's eth0: every packet it receives is dropped with
        ``loss_pct`` % (iptables' statistic match) and every packet it sends is delayed
        ``delay_ms`` +- ``jitter_ms`` (tc netem). False when the kernel has no netem (no
        sch_netem module, as in some containers): the loss is then the only fault."""
        self._exec(
            self.ns(broker_id), "iptables", "-A", "INPUT", "-i", "eth0", "-m", "statistic",
            "--mode", "random", "--probability", f"{loss_pct / 100:.4f}", "-j", "DROP",
        )  # fmt: skip
        netem = _ip(
            "netns", "exec", self.ns(broker_id), "tc", "qdisc", "add", "dev", "eth0", "root",
            "netem", "delay", f"{delay_ms}ms", f"{jitter_ms}ms", check=False,
        )  # fmt: skip
        return netem.returncode == 0

    def restore(self, broker_id: int) -> None:
        self._exec(self.ns(broker_id), "iptables", "-F", "INPUT")
        _ip("netns", "exec", self.ns(broker_id), "tc", "qdisc", "del", "dev", "eth0", "root",
            check=False)

    # ------------------------------------------------------------------------ brokers

    def broker_dir(self, broker_id: int) -> Path:
        return self.data_dir / f"broker-{broker_id}"

    def broker_command(self, broker_id: int) -> list[str]:
        """How a broker is started on a host of a multi-host cluster (docs/operations.md):
        ``rillet broker start --config server.properties``, its listeners bound to every
        interface of its namespace and advertised at its own address."""
        keyfile = self.data_dir / "cluster.curve"
        if not keyfile.exists():
            generate_keyfile(keyfile)
        host = self.address(broker_id).rsplit(":", 1)[0]
        lines = [
            f"node.id={broker_id}",
            "process.roles=broker,controller",
            f"controller.quorum.voters={self.quorum_voters}",
            f"listeners=CLIENT://0.0.0.0:{PORT},BROKER://0.0.0.0:{INTERNAL_PORT}",
            f"advertised.listeners=CLIENT://{host}:{PORT},BROKER://{host}:{INTERNAL_PORT}",
            f"log.dirs={self.broker_dir(broker_id)}",
            f"inter.broker.curve.keyfile={keyfile}",
            *(f"{k}={v}" for k, v in sorted(self.configs.items())),
        ]
        config = self.broker_dir(broker_id) / "server.properties"
        config.write_text("\n".join(lines) + "\n")
        return [sys.executable, "-m", "rillet.cli.main", "broker", "start", "--config", str(config)]

    def start_broker(self, broker_id: int) -> None:
        directory = self.broker_dir(broker_id)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "stderr.log", "ab") as err:
            self.procs[broker_id] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(broker_id), *self.broker_command(broker_id)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def stderr_tail(self, broker_id: int, lines: int = 20) -> str:
        try:
            text = (self.broker_dir(broker_id) / "stderr.log").read_text(errors="replace")
        except OSError:
            return "(no stderr.log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout_s: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._make_network()
        for broker_id in self.broker_ids:
            self.start_broker(broker_id)
        self.driver = DriverProcess(self.ns("cl"), self.data_dir / "driver.log")
        self.wait_until(
            lambda: all(self.registered(b) for b in self.broker_ids),
            timeout_s,
            "every broker registered, unfenced, knowing the controller",
        )

    # ----------------------------------------------------------------------- observing

    def call(self, op: str, **args) -> dict:
        assert self.driver is not None
        return self.driver.call(op, **args)

    def metadata(self, via: list[int] | None = None, topics=None) -> dict | None:
        """Metadata as the first of ``via`` (default: all brokers) that answers sees it."""
        addresses = [self.address(b) for b in (via or self.broker_ids)]
        answer = self.call("metadata", via=addresses, topics=topics)
        return None if "error" in answer else answer

    def registered(self, broker_id: int) -> bool:
        """``broker_id`` answers, knows an active controller and lists itself as unfenced."""
        m = self.metadata([broker_id])
        return m is not None and m["controller_id"] >= 0 and broker_id in m["brokers"]

    def wait_until(self, condition, timeout_s: float, what: str):
        """Poll ``condition`` until truthy; AssertionError (with the brokers' stderr tails
        and liveness) after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                alive = {b: p.poll() is None for b, p in self.procs.items()}
                tails = "\n".join(f"--- broker {b}\n{self.stderr_tail(b, 8)}" for b in alive)
                raise AssertionError(
                    f"timed out after {timeout_s} s waiting for {what}; alive={alive}\n{tails}"
                )
            time.sleep(0.1)

    # ------------------------------------------------------------------------ teardown

    def close(self) -> None:
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.close()
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for namespace in reversed(self.namespaces):
            _ip("netns", "del", namespace, check=False)
        self.namespaces.clear()
