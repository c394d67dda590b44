"""One broker process: the composition root, and its command line.

    python -m rillet.actors.node --broker-id 1 --data-dir DIR --listen 127.0.0.1:9092 \
        --internal-listen 127.0.0.1:19092 [--config log.retention.check.interval.ms=1000]...

Two listeners (docs/cluster.md): ``--listen`` for clients (the broker's public address) and
``--internal-listen`` for other brokers (Raft, heartbeats, metadata fetches, AlterPartition,
replica fetches, forwarded admin requests; ``controller.quorum.voters`` names these
addresses). With ``inter.broker.curve.keyfile`` the inter-broker listener is a CURVE server
that admits only holders of the cluster key pair, and this broker's own connections to its
peers use that pair.

Start order: lock the data dir, bind both ROUTER sockets (fail fast if a port is taken),
start the Controller (on a voter it opens the Raft metadata log; its publications of the
committed image start one PartitionReplica per hosted partition), then serve. The broker
registers with the active controller by heartbeating (docs/cluster.md). ApiVersions
answers as soon as it serves; a Metadata response naming a controller and listing this
broker is the "registered and unfenced" signal the launcher waits for. SIGTERM/SIGINT: a
controlled shutdown first (the controller moves this broker's leaderships away and takes it out
of the ISRs: actors/controlled_shutdown.py), then stop taking requests, close every partition log
(flush + clean-shutdown marker), close the metadata log, exit 0. SIGKILL is survived by the
log store's recovery.

Data dir layout: ``<topic>-<partition>/`` per partition (a ``partition.metadata`` file holds
the topic id), ``__cluster_metadata/`` (the Raft metadata log, see actors/metadata_log.py; only
on controller voters), ``broker.log``, ``.lock``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import pykka
from loguru import logger
from rillet.coordinator.control.delta import local_changes
from rillet.coordinator.metadata import MetadataImage
from rillet.logstore.fs import FileSystem
from rillet.logstore.offset_checkpoint import OffsetCheckpoint
from rillet.transport import protocol as P
from rillet.transport.conn_limits import ConnectionLimits
from rillet.transport.endpoint import ClientEndpoint, ServerEndpoint
from rillet.transport.security import CurveKeys, KeyFileError, load_keyfile

from . import dynamic_configs, group_sync, metrics_sources, runtime
from . import group_coordinator as GC
from . import partition as R
from . import share_partition as SP
from . import share_state as SST
from . import txn_coordinator as TC
from .authorize import authorizer_of
from .broker_lifecycle import BrokerLifecycle, Identity
from .broker_lifecycle import Progress as LifecycleProgress
from .configs import ConfigError, effective_topic_configs, log_config, validate_broker_configs
from .controlled_shutdown import controlled_shutdown
from .controller import BROKER_IDENTITY_PREFIX, Controller, ControllerHint, parse_voters
from .controller import Tick as ControllerTick
from .gc_watch import GcWatch
from .metadata_publisher import MetadataPublisher
from .metrics import start_metrics
from .node_listeners import advertise, bind_addresses
from .replica_fetcher import ReplicaFetcher
from .router import Router
from .scrubber import Scrubber
from .security import client_security, principal_of_key
from .session import BrokerContext, Listener
from .share_dlq import DeadLetterWriter
from .share_state_client import ShareStateClient, local_first
from .ticker import Ticker, now_ms
from .txn_verify import RemoteTxnVerifier

_PARTITION_DIR = re.compile(r"^(?P<topic>[a-zA-Z0-9._-]+)-(?P<partition>\d+)$")
CLEAN_SHUTDOWN_FILE = ".clean-shutdown"  # written last by a clean stop, removed at start
KAFKA_ADDRESS_FILE = "kafka-listener"  # the KAFKA listener's advertised host:port
HW_CHECKPOINT_FILE = "replication-offset-checkpoint"  # every hosted partition's HW (Kafka's)


class BrokerNode:
    """Builds and runs the actors of one broker. ``start()``, then ``stop()`` (idempotent)."""

    def __init__(
        self,
        broker_id: int,
        data_dir: Path,
        listen: str | None,
        configs: dict[str, str] | None = None,
        internal_listen: str | None = None,
    ) -> None:
        self.broker_id = broker_id
        self.data_dir = Path(data_dir)
        self.configs = validate_broker_configs(configs or {})
        # `listeners` (CLIENT, BROKER) over --listen / --internal-listen (actors/node_listeners.py)
        self.listen, self.internal_listen = bind_addresses(listen, internal_listen, self.configs)
        advertise(self.listen, self.internal_listen, self.configs)  # ConfigError if wrong
        self.curve: CurveKeys | None = None
        keyfile = self.configs["inter.broker.curve.keyfile"]
        if keyfile:
            try:
                self.curve = load_keyfile(Path(keyfile))
            except KeyFileError as e:
                raise ConfigError(f"inter.broker.curve.keyfile: {e}") from None
        self.client_curve, self._bootstrap_users = client_security(self.configs)
        parse_voters(self.configs["controller.quorum.voters"])  # ConfigError if malformed
        self._stopped = False
        self._lock_file = None
        self._replica_lock = threading.Lock()
        self._claims: dict[tuple[str, int], R.DirectoryClaim] = {}
        self._log = logger.bind(broker=broker_id)
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._voters = parse_voters(self.configs["controller.quorum.voters"])
        # This process's identity in the cluster. Until the committed metadata registers THIS
        # incarnation (the controller fences the previous process in the same entry), the
        # broker hosts no partition: an image replayed from disk still names the dead process
        # as leader and in-sync, and acting on it would let a log that recovery cut short lead.
        # <start time in ns>-<random>: ordered, so the controller can refuse a late heartbeat
        # of an older process (coordinator/control/brokers.py, ``older``)
        self.incarnation = f"{time.time_ns():020d}-{uuid.uuid4().hex}"
        self._registered = False
        # high watermarks of hosted partitions, written to ONE checkpoint file every
        # replica.high.watermark.checkpoint.interval.ms (replicas update it, any thread)
        self._fs = FileSystem()
        self._hw_checkpoint = OffsetCheckpoint(self._fs, self.data_dir / HW_CHECKPOINT_FILE)
        self._hw_table = self._hw_checkpoint.table
        self._hw_stop = threading.Event()

    # ------------------------------------------------------------------------------ start

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        runtime.configure("default", int(self.configs["num.network.threads"]))
        runtime.configure("io", int(self.configs["num.io.threads"]))
        group_sync.install()  # log flushes: one syncfs per round, not an fsync per file
        marker = self.data_dir / CLEAN_SHUTDOWN_FILE
        clean_shutdown = marker.exists() or not any(p.is_dir() for p in self.data_dir.iterdir())
        marker.unlink(missing_ok=True)
        self._hw_checkpoint.load()
        self.ticker = Ticker()
        max_bytes = int(self.configs["socket.request.max.bytes"])
        # a session is released when its peer's connection closes (the endpoint's monitor)
        self.endpoint = ServerEndpoint(
            self.listen,
            lambda peer, frames, lease: self.router.handle(peer, frames, lease),
            max_message_bytes=max_bytes,
            max_queued_bytes=int(self.configs["queued.max.request.bytes"]),
            on_disconnect=lambda peer: self.router.disconnected(peer),
            curve=self.client_curve,
            principal_of=self._principal_of,
            # principals for ACLs, and for user quotas on a CURVE listener (actors/quotas.py)
            peer_info=authorizer_of(self.configs).enabled or self.client_curve is not None,
            limits=ConnectionLimits(int(self.configs["max.connections"]),  # docs/runtime.md
                                    int(self.configs["max.connections.per.ip"])),
            handshake_ivl_ms=int(self.configs["handshake.timeout.ms"]),  # docs/security.md
        )
        try:
            self.internal_endpoint = ServerEndpoint(
                self.internal_listen,
                lambda peer, frames, lease: self.internal_router.handle(peer, frames, lease),
                max_message_bytes=max_bytes,
                max_queued_bytes=int(self.configs["queued.max.request.bytes"]),
                name="rillet-internal-io",
                curve=self.curve,
                on_disconnect=lambda peer: self.internal_router.disconnected(peer),
                handshake_ivl_ms=int(self.configs["handshake.timeout.ms"]),
            )
        except Exception:
            self.endpoint.close()
            raise
        if self.curve is None:
            self._log.warning(
                "inter.broker.curve.keyfile is not set: the inter-broker listener {} is plain "
                "TCP, and anyone who can reach it can speak Raft and replication to this broker",
                self.internal_endpoint.address,
            )
        # what clients and other brokers are told to use (advertised.listeners)
        client_adv, broker_adv = advertise(
            self.endpoint.address, self.internal_endpoint.address, self.configs
        )
        host, port = client_adv.rsplit(":", 1)
        ihost, iport = broker_adv.rsplit(":", 1)
        self.ctx = BrokerContext(
            broker_id=self.broker_id,
            host=host,
            port=int(port),
            cluster_id=self.configs["cluster.id"],
            broker_configs=self.configs,
            send=self.endpoint.send,
            ticker=self.ticker,
            incarnation=self.incarnation,
            log_dir=str(self.data_dir.absolute()),
        )
        self.ctx.describe_stats = self._stats
        # the collector's pauses in the counters, a slow one in the log, and the long-lived
        # objects frozen out of its walks after a slow full collection (actors/gc_watch.py)
        self.ctx.gc_watch = GcWatch(schedule=self.ticker.call_later).install()
        # dynamic broker configs from the metadata image, laid over self.configs in place
        self.ctx.live_configs = dynamic_configs.LiveBrokerConfigs(self.broker_id, self.configs)
        if self.endpoint.limits is not None:  # refused connections, in BrokerCounters
            self.endpoint.limits.on_refuse = self.ctx.counters.add
        self.metrics_server = start_metrics(self.ctx, self.configs, self.data_dir)  # actors/metrics.py
        max_idle = int(self.configs["connections.max.idle.ms"])
        self.router = Router(self.ctx, max_idle, Listener("client", False, self.endpoint.send))
        self.internal_router = Router(
            self.ctx, max_idle, Listener("internal", True, self.internal_endpoint.send)
        )
        # each arms one ticker timer for when it next has timed work (actors/wakeup.py)
        self.ctx.group_coordinator = GC.GroupCoordinatorActor.start(
            self.ctx, schedule=self.ticker.call_later)
        self.ctx.txn_coordinator = TC.TxnCoordinatorActor.start(
            self.ctx, self._send_to_broker, schedule=self.ticker.call_later)
        self.ctx.share_state = SST.ShareStateActor.start(self.ctx, schedule=self.ticker.call_later)
        self._cleanup_deleted()
        # broker-to-broker requests (Raft, heartbeats, metadata fetches, forwarded admin)
        self.peers = ClientEndpoint(
            identity_prefix=BROKER_IDENTITY_PREFIX + str(self.broker_id).encode() + b":",
            name=f"rillet-broker-{self.broker_id}-peers",
            curve=self.curve,
        )
        self._internal_address = f"{ihost}:{iport}"
        # KIP-890 verification of transactional produces (actors/txn_verify.py)
        self.txn_verifier = RemoteTxnVerifier(
            lambda: self.ctx.image, self._address_of, self.peers.request
        )
        # partition leaders persist share-partition state through it (actors/share_state_client.py)
        self.share_state_client = ShareStateClient(
            lambda key: SST.find_coordinator(
                self.ctx, P.FindCoordinatorRequest(key=key, key_type=P.COORDINATOR_SHARE)),
            self._address_of,
            local_first(self.peers.request, lambda: self._address_of(self.broker_id),
                        lambda: self.ctx.share_state, self.ticker.call_later),
            self.ticker.call_later,
        )
        self.ctx.share_state_client = self.share_state_client
        # share groups: the share-partitions of the partitions this broker leads
        self.ctx.share_partitions = SP.SharePartitionManager.start(
            self.ctx, self.share_state_client, DeadLetterWriter(self.ctx, self._send_to_broker),
            schedule=self.ticker.call_later,
        )
        self.lifecycle = None
        self._progress = (-1, 0, MetadataImage())
        self._progress_lock = threading.Lock()
        # images are applied off the controller's thread (a big topic's thousands of
        # partition actors would stop Raft for seconds: actors/metadata_publisher.py)
        self.publisher = MetadataPublisher(
            self._publish, name=f"rillet-broker-{self.broker_id}-metadata-publisher"
        )
        self.controller = Controller.start(
            broker_id=self.broker_id,
            metadata_dir=self.data_dir / "__cluster_metadata",
            publish=self.publisher.offer,
            after_publish=self.publisher.after,
            broker_configs=self.configs,
            endpoint=self.peers,
            on_controller=self._on_controller,
            on_caught_up=self._on_caught_up,
            on_progress=self._on_metadata_progress,
            internal_address=self._internal_address,
            raft_stats=self.ctx.metrics.sources.raft if self.ctx.metrics else None,
            # woken when its timed work is due, not every 20 ms (controller.next_due_ms)
            wake_at=lambda delay_s: self.ticker.call_later(
                delay_s, lambda: self._tell_controller(ControllerTick())
            ),
        )
        self.ctx.controller = self.controller
        metrics_sources.wire(self)  # what scrapes read (docs/metrics.md)
        # Kafka's wire protocol on the KAFKA listener, if `listeners` names one; registered
        # with the broker (kafka_host/kafka_port) so Metadata can advertise it
        from .kafka_listener import start_kafka_listener

        self.kafka_listener = start_kafka_listener(self.configs, self.ctx)
        kafka = self.kafka_listener.endpoint if self.kafka_listener else None
        if kafka:  # for the launcher's bootstrap.servers line (port 0 picks a free port)
            (self.data_dir / KAFKA_ADDRESS_FILE).write_text(f"{kafka.host}:{kafka.port}\n")
        self.lifecycle = BrokerLifecycle.start(
            Identity(
                self.broker_id,
                host,
                int(port),
                ihost,
                int(iport),
                self.incarnation,
                clean_shutdown,
                kafka.host if kafka else "",
                kafka.port if kafka else 0,
            ),
            voters=self.controller_voters(),
            heartbeat_ms=int(self.configs["broker.heartbeat.interval.ms"]),
            endpoint=self.peers,
            controller=self.controller,
            schedule=self.ticker.call_later,
            on_controller_hint=lambda cid: self._tell_controller(ControllerHint(cid)),
        )
        with self._progress_lock:  # what the controller reported before the lifecycle started
            self.lifecycle.tell(LifecycleProgress(*self._progress))
        # replica fetchers' own connections (bulk data never delays Raft or heartbeats)
        self.fetch_endpoint = ClientEndpoint(
            identity_prefix=BROKER_IDENTITY_PREFIX + f"{self.broker_id}-fetch:".encode(),
            name=f"rillet-broker-{self.broker_id}-fetch",
            curve=self.curve,
        )
        self.endpoint.start()
        self.internal_endpoint.start()
        # the controller asks for its wake-ups (wake_at above); this first one starts it
        self._tell_controller(ControllerTick())
        flush_s = int(self.configs["log.flush.scheduler.interval.ms"]) / 1000
        check_s = int(self.configs["log.retention.check.interval.ms"]) / 1000
        self._flush_tick_ms = max(1, int(flush_s * 1000))
        hw_interval = int(self.configs["replica.high.watermark.checkpoint.interval.ms"]) / 1000
        threading.Thread(
            target=self._checkpoint_loop, args=(hw_interval,), name="rillet-hw-ckpt", daemon=True
        ).start()
        self.ticker.every(check_s, lambda: self._tell_replicas(R.Housekeep(now_ms())))
        expire_s = int(self.configs["producer.id.expiration.check.interval.ms"]) / 1000
        self.ticker.every(expire_s, lambda: self._tell_replicas(R.ExpireProducers(now_ms())))
        if max_idle > 0:  # -1: never (Kafka's Selector); checked at a quarter of the limit
            idle_check_s = min(30.0, max(0.05, max_idle / 4000))
            self.ticker.every(idle_check_s, self.router.expire_idle)
            self.ticker.every(idle_check_s, self.internal_router.expire_idle)
        self.scrubber = None
        if self.configs["log.scrub.enable"] == "true":
            self.scrubber = Scrubber.start(
                self.broker_id,
                lambda: self.ctx.replicas,
                int(self.configs["log.scrub.bytes.per.second"]),
                int(self.configs["log.scrub.interval.ms"]),
                schedule=self.ticker.call_later,  # it arms its own wake-ups (actors/wakeup.py)
            )
        self.ticker.every(5.0, self.ctx.gc_watch.report)
        self.ctx.gc_watch.started()  # what the start made is walked by no collection
        self._log.info(
            "broker {} serving clients on {}, brokers on {} ({}) (data dir {})",
            self.broker_id,
            self.endpoint.address,
            self.internal_endpoint.address,
            "CURVE" if self.curve else "plain",
            self.data_dir,
        )

    def _principal_of(self, key: bytes) -> str | None:
        """ZAP thread: the principal of a client public key (actors/security.py)."""
        ctx = getattr(self, "ctx", None)
        return principal_of_key(ctx.image if ctx else None, key, self._bootstrap_users)

    def _stats(self) -> P.BrokerStatsResponse:
        """Any session thread: the BrokerStats answer (racy reads of counters are fine)."""
        router = self.router
        return P.BrokerStatsResponse(
            broker_id=self.broker_id,
            connection_count=router.session_count,
            connection_creation_total=router.opened,
            connection_close_disconnected_total=router.released_disconnected,
            connection_close_idle_total=router.released_idle,
            inter_broker_connection_count=self.internal_router.session_count,
            threads=_os_threads(),
            queued_request_bytes=self.endpoint.queued_bytes,
            lane_threads=runtime.lane_threads(),  # dynamic num.io.threads (actors/runtime.py)
        )

    def _lock_data_dir(self) -> None:
        self._lock_file = open(self.data_dir / ".lock", "a+")  # noqa: SIM115
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SystemExit(
                f"data dir {self.data_dir} is in use by another broker process"
            ) from None

    def _tell_group_coordinator(self, message: object) -> None:
        ref = getattr(self.ctx, "group_coordinator", None)
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

    def _tell_txn_coordinator(self, message: object) -> None:
        ref = getattr(self.ctx, "txn_coordinator", None)
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

    def _tell_share(self, message: object) -> None:
        ref = getattr(self.ctx, "share_partitions", None)
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

    def _tell_share_state(self, message: object) -> None:
        ref = getattr(self.ctx, "share_state", None)
        if ref is not None:
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

    def _send_to_broker(self, broker_id: int, request: object, timeout_ms: int):
        """Any thread: a future of ``broker_id``'s answer from its inter-broker listener
        (the transaction coordinator's markers), None if it has no known address."""
        address = self._address_of(broker_id)
        if address is None or self._stopped:
            return None
        return self.peers.request(address, request, timeout_ms)

    def _tell_controller(self, message: object) -> None:
        controller = getattr(self, "controller", None)  # a wake armed while it starts
        if controller is None:
            return
        try:
            controller.tell(message)
        except pykka.ActorDeadError:
            pass

    def controller_voters(self) -> dict[int, str]:
        """``controller.quorum.voters``; empty: this broker alone, at its inter-broker listener."""
        return self._voters or {self.broker_id: self._internal_address}

    def _on_metadata_progress(self, controller_id: int, applied: int, image: MetadataImage) -> None:
        """Controller thread: what the heartbeats report, handed to the lifecycle actor."""
        with self._progress_lock:
            self._progress = (controller_id, applied, image)
            if self.lifecycle is not None:
                try:
                    self.lifecycle.tell(LifecycleProgress(controller_id, applied, image))
                except pykka.ActorDeadError:
                    pass

    def _on_controller(self, controller_id: int) -> None:
        self.ctx.controller_id = controller_id
        self._log.info("active controller is now {}", controller_id)

    def _on_caught_up(self, image: MetadataImage) -> None:
        """Controller thread, once the image has caught up after a start: remove the
        partition dirs of topics deleted while this broker was down."""
        hosted = {(name, p) for name, topic in image.topics.items() for p in topic.partitions}
        with self._replica_lock:
            hosted |= set(self.ctx.replicas)
            self._cleanup_orphans(hosted)

    # ----------------------------------------------------------------------- replication

    def _address_of(self, broker_id: int) -> str | None:
        return self.ctx.image.inter_broker_address(broker_id, self._voters)

    def _to_controller(self, req: object, answered) -> None:
        """Send ``req`` to the active controller's inter-broker listener; ``answered`` gets
        the error name (any thread; REQUEST_TIMED_OUT / NOT_CONTROLLER: the caller re-sends)."""
        controller = self.ctx.controller_id
        address = self._address_of(controller) if controller >= 0 else None
        if address is None:
            answered("NOT_CONTROLLER")
            return

        def done(f) -> None:
            try:
                code = getattr(f.result(), "error_code", P.ErrorCode.UNKNOWN_SERVER_ERROR)
                try:
                    name = P.ErrorCode(code).name
                except ValueError:
                    name = "UNKNOWN_SERVER_ERROR"
            except Exception:  # noqa: BLE001 - timed out / controller down: re-sent later
                name = "REQUEST_TIMED_OUT"
            answered(name)

        self.peers.request(address, req, 5000).add_done_callback(done)

    def _send_alter(self, topic: str, partition: int, proposal, answered) -> None:
        """A leader's ISR proposal (AlterPartition) to the active controller."""
        req = P.AlterPartitionRequest(
            broker_id=self.broker_id,
            topic=topic,
            partition=partition,
            leader_epoch=proposal.leader_epoch,
            partition_epoch=proposal.partition_epoch,
            new_isr=tuple(proposal.new_isr),
            new_isr_incarnations=tuple(proposal.incarnations),
            broker_incarnation=self.incarnation,
        )
        self._to_controller(req, answered)

    def _send_damage(self, topic: str, partition: int, offset: int, leader_epoch: int, answered):
        """A replica's ReplicaDamage report (actors/partition_damage.py) to the controller."""
        req = P.ReplicaDamageRequest(
            broker_id=self.broker_id,
            topic=topic,
            partition=partition,
            offset=offset,
            leader_epoch=leader_epoch,
        )
        self._to_controller(req, answered)

    def _replica_config(self, topic) -> dict:
        values = effective_topic_configs(topic.configs, self.configs)
        return {
            "min_insync_replicas": int(values["min.insync.replicas"]),
            "replica_lag_time_max_ms": int(self.configs["replica.lag.time.max.ms"]),
            "producer_id_expiration_ms": int(self.configs["producer.id.expiration.ms"]),
        }

    def _update_fetchers(self, image: MetadataImage) -> None:
        """Publisher thread, under the replica lock: every followed partition is fetched
        by the fetcher of its leader."""
        wanted: dict[int, dict[tuple[str, int], int]] = {}
        for key in self.ctx.replicas:
            info = image.partition(*key)
            if info is None or info.leader < 0 or info.leader == self.broker_id:
                continue
            wanted.setdefault(info.leader, {})[key] = info.leader_epoch
        for source in set(wanted) | set(self.fetchers):
            fetcher = self.fetchers.get(source)
            if fetcher is None:
                fetcher = ReplicaFetcher(
                    self.broker_id,
                    source,
                    address_of=self._address_of,
                    endpoint=self.fetch_endpoint,
                    replica=self.ctx.replicas.get,
                    fetch_wait_ms=int(self.configs["replica.fetch.wait.max.ms"]),
                    fetch_max_bytes=int(self.configs["replica.fetch.max.bytes"]),
                    incarnation=self.incarnation,
                )
                self.fetchers[source] = fetcher
                fetcher.start()
            fetcher.set_partitions(wanted.get(source, {}))

    def _tell_replicas(self, message: object) -> None:
        for ref in list(self.ctx.replicas.values()):
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                pass

    # -------------------------------------------------------------------- reconciliation

    def _partition_dir(self, topic: str, partition: int) -> Path:
        return self.data_dir / f"{topic}-{partition}"

    def _publish(self, old: MetadataImage, new: MetadataImage) -> None:
        """Publisher thread (actors/metadata_publisher.py): make the hosted partition actors
        match ``new``, once ``new`` registers this incarnation (before that the broker hosts
        no partition)."""
        if self._stopped:
            return
        dynamic = self.ctx.live_configs.on_image(new, self._log)  # actors/dynamic_configs.py
        if not self._registered:
            me = new.brokers.get(self.broker_id)
            if me is None or me.incarnation != self.incarnation:
                with self._replica_lock:
                    self.ctx.image = new
                return
            self._registered = True
            self._log.info(
                "incarnation {} registered at metadata offset {}; hosting partitions",
                self.incarnation[:8],
                new.offset,
            )
            old = MetadataImage()
        with self._replica_lock:
            if self._stopped:  # stop() has collected the replicas: start none after it
                return
            self.ctx.image = new
            changes = local_changes(old, new, self.broker_id, self.ctx.replicas)
            changes = dynamic_configs.widen(changes, dynamic, new, self.ctx.replicas)
            if self.ctx.metrics is not None:  # ISR shrinks/expands (actors/metrics_sources.py)
                self.ctx.metrics.sources.isr_changed(old, new, changes.changed, self.broker_id)
            settings: dict[str, tuple] = {}  # per topic: its log config and replica settings

            def topic_settings(name: str) -> tuple:
                if name not in settings:
                    topic = new.topics[name]
                    settings[name] = (
                        log_config(topic.configs, self.configs),
                        self._replica_config(topic),
                    )
                return settings[name]

            for name, p, reason in changes.deletes:
                ref = self.ctx.replicas.pop((name, p), None)
                # (a partition not hosted here has no claim: nobody to exclude)
                claim = self._claims.pop((name, p), None) or R.DirectoryClaim()
                directory = self._partition_dir(name, p)
                doomed: Path | None = directory.with_name(f"{directory.name}.{reason}-delete")
                with claim.lock:  # R.DirectoryClaim: the replica makes no directory after this
                    claim.deleted = True
                    # nor writes its high watermark: the entry would be a new topic's of the
                    # name, which starts from it after a restart (an HW its ISR never had)
                    self._hw_table.pop((name, p), None)
                    try:
                        directory.rename(doomed)
                    except FileNotFoundError:
                        doomed = None  # not prepared yet: there is nothing to remove
                    except OSError as e:  # left in place: a new topic of the name removes it
                        self._log.error("cannot set {} aside for deletion: {}", directory, e)
                        doomed = None
                if ref is not None:
                    ref.tell(R.Delete(doomed))
            for name, p, info in changes.changed:
                extra = topic_settings(name)[1]
                self.ctx.replicas[(name, p)].tell(
                    R.PartitionChanged(info, extra["min_insync_replicas"])
                )
            for name in changes.reconfigured:
                config = topic_settings(name)[0]
                for p in new.topics[name].partitions:
                    ref = self.ctx.replicas.get((name, p))
                    if ref is not None:
                        ref.tell(R.Reconfigure(config))
            for name, p, info in changes.creates:
                topic = new.topics[name]
                config, extra = topic_settings(name)
                claim = self._claims[(name, p)] = R.DirectoryClaim()
                self.ctx.replicas[(name, p)] = R.PartitionReplica.start(
                    name,
                    p,
                    self._partition_dir(name, p),
                    config,
                    info.leader_epoch,
                    self.broker_id,
                    topic.topic_id,
                    info=info,
                    send_alter=self._send_alter,
                    schedule=self.ticker.call_later,
                    hw_sink=self._hw_table,
                    initial_high_watermark=self._hw_table.get((name, p)),
                    tick_ms=self._flush_tick_ms,
                    send_damage=self._send_damage,
                    scrub_enabled=self.configs["log.scrub.enable"] == "true",
                    counters=self.ctx.counters,
                    txn_verifier=self.txn_verifier,
                    on_txn_marker=self._tell_group_coordinator,
                    claim=claim,
                    **extra,
                )
            self._update_fetchers(new)
        if changes.creates and self.ctx.gc_watch is not None:
            self.ctx.gc_watch.partitions_added()  # frozen as they open (gc_watch.py)
        if changes.deletes and self.ctx.gc_watch is not None:
            self.ctx.gc_watch.partitions_dropped()  # their cycles collectable (gc_watch.py)
        self._tell_group_coordinator(GC.ImageChanged(new))
        self._tell_txn_coordinator(TC.ImageChanged(new))
        self._tell_share(SP.ImageChanged(new))
        self._tell_share_state(SST.ImageChanged(new))

    # ------------------------------------------------------- high watermark checkpoint

    def _write_high_watermarks(self) -> None:
        with self._replica_lock:
            hosted = set(self.ctx.replicas) if self._registered and not self._stopped else None
        try:
            self._hw_checkpoint.write(hosted)  # forgets partitions that left this broker
        except OSError as e:
            self._log.error("high watermark checkpoint failed: {}", e)

    def _checkpoint_loop(self, interval_s: float) -> None:
        while not self._hw_stop.wait(interval_s):
            self._write_high_watermarks()

    def _cleanup_deleted(self) -> None:
        """Remove partition dirs a deletion renamed but did not finish removing."""
        for entry in self.data_dir.iterdir():
            if entry.is_dir() and entry.name.endswith("-delete"):
                self._log.info("removing deleted partition directory {}", entry.name)
                shutil.rmtree(entry, ignore_errors=True)

    def _cleanup_orphans(self, hosted: set[tuple[str, int]]) -> None:
        """Remove partition dirs of deleted topics (a crash can leave them behind)."""
        for entry in self.data_dir.iterdir():
            if not entry.is_dir() or entry.name.startswith("__"):
                continue
            m = _PARTITION_DIR.match(entry.name)
            key = (m["topic"], int(m["partition"])) if m else None
            if entry.name.endswith("-delete") or (m and key not in hosted):
                self._log.info("removing orphaned partition directory {}", entry.name)
                shutil.rmtree(entry, ignore_errors=True)

    # ------------------------------------------------------------------------------- stop

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._log.info("broker {} shutting down", self.broker_id)
        if self.ctx.gc_watch is not None:
            self.ctx.gc_watch.uninstall()
        # first the controller moves this broker's leaderships away (actors/controlled_shutdown.py)
        controlled_shutdown(
            self.lifecycle,
            self.configs,
            self._log,
            lambda: any(b != self.broker_id for b in self.ctx.image.live_brokers()),
        )
        if getattr(self, "kafka_listener", None) is not None:
            self.kafka_listener.stop()
        self.endpoint.close()
        self.internal_endpoint.close()
        if getattr(self, "metrics_server", None) is not None:
            self.metrics_server.close()
        self.router.close()
        self.internal_router.close()
        if self.lifecycle is not None:
            self.lifecycle.stop()
        self.controller.stop()  # no new images after this
        self.publisher.stop()  # nor new partition actors (it starts none once stopped)
        with self._replica_lock:
            fetchers = list(self.fetchers.values())
            self.fetchers.clear()
        for f in fetchers:
            f.stop()
        self.fetch_endpoint.close()
        for f in fetchers:
            f.join(5)
        self.peers.close()
        with self._replica_lock:
            refs = list(self.ctx.replicas.values())
            self.ctx.replicas.clear()
        # the futures complete after on_stop (flush, clean-shutdown marker): the pool threads
        # are daemons, so the process must not exit before
        stopping = []
        for ref in refs:
            try:
                stopping.append(ref.stop(block=False))
            except pykka.ActorDeadError:
                pass
        for future in stopping:
            try:
                future.get(timeout=30)
            except Exception:  # noqa: BLE001
                pass
        self.ticker.stop()
        pykka.ActorRegistry.stop_all(block=True, timeout=10)
        self._hw_stop.set()
        self._write_high_watermarks()
        (self.data_dir / CLEAN_SHUTDOWN_FILE).touch()
        self._log.info("broker {} stopped cleanly", self.broker_id)
        if self._lock_file is not None:
            self._lock_file.close()


def _os_threads() -> int:
    """OS threads of this process (Linux /proc; elsewhere the Python threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


# ------------------------------------------------------------------------------ command line


def _format(record: dict) -> str:
    extra = " ".join(f"{k}={v}" for k, v in record["extra"].items())
    return (
        "{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} "
        + (f"[{extra}] " if extra else "").replace("{", "{{").replace("}", "}}")
        + "{message}\n{exception}"
    )


def setup_logging(data_dir: Path, broker_id: int) -> None:
    logger.remove()
    logger.configure(extra={"broker": broker_id})
    logger.add(sys.stderr, level="INFO", format=_format)
    logger.add(
        data_dir / "broker.log", level="DEBUG", format=_format, rotation="50 MB", retention=3
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m rillet.actors.node",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--broker-id", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument(
        "--listen",
        default=None,
        help="client listener HOST:PORT to bind (port 0: any free); or listeners=CLIENT://...",
    )
    parser.add_argument(
        "--internal-listen",
        default=None,
        metavar="HOST:PORT",
        help="inter-broker listener to bind (default: the --listen host, any free port); "
        "controller.quorum.voters names these addresses",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="broker config, e.g. log.retention.check.interval.ms=1000",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    configs = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: --config {item!r} must be KEY=VALUE", file=sys.stderr)
            return 2
        configs[key.strip()] = value.strip()
    return run(args.broker_id, args.data_dir, args.listen, configs, args.internal_listen)


def run(
    broker_id: int,
    data_dir: Path,
    listen: str | None,
    configs: dict[str, str],
    internal_listen: str | None = None,
) -> int:
    """Run one broker in the foreground until SIGTERM/SIGINT; the exit code."""
    data_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(data_dir, broker_id)
    try:
        node = BrokerNode(broker_id, data_dir, listen, configs, internal_listen=internal_listen)
    except ConfigError as e:
        logger.error("bad broker config: {}", e)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        node.start()
    except SystemExit as e:
        logger.error("{}", e)
        return 1
    except Exception as e:  # noqa: BLE001 - e.g. address in use: one clear line, exit 1
        logger.error("broker failed to start: {}", e)
        pykka.ActorRegistry.stop_all(block=False)
        return 1
    (data_dir / "broker.json").write_text(
        json.dumps(
            {
                "broker_id": broker_id,
                "pid": os.getpid(),
                "address": node.endpoint.address,
                "internal_address": node.internal_endpoint.address,
            }
        )
    )
    while not stop.wait(1.0):
        pass
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
