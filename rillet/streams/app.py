"""A streams application (docs/streams.md "Running"): ``App(application_id, config)``, its
topology, and the runtime that runs it: a consumer in a group named after the application id
(range assignor: co-partitioned inputs land together), one task per (sub-topology, input
partition) it holds, a producer (transactional under exactly_once), commits every
``commit.interval.ms``, stores restored from their changelogs, ``app.store(name)`` for
interactive queries.

Threads: ``run()`` owns the clients and every task (the rebalance listener runs inside its
``consumer.poll``). ``close()`` and ``store(name)`` may be called from any thread: a query
is handed to the run thread, which answers between two batches (so a store is never read
while a task writes it, and SQLite connections stay on their thread).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from .api import CompiledTopology, StoreFactory, TaskId
from .config import StreamsConfig, streams_config
from .errors import StreamsError
from .instances import Directory, KeyQueryMetadata, StreamsMetadata
from .metadata import all_metadata, key_metadata
from .runtime import CREATED, ERROR, NOT_RUNNING, REBALANCING, Runtime
from .task import StreamTask
from .topology import Topology

log = logging.getLogger("rillet.streams.app")

class App:
    """``App("wordcount", {"bootstrap.servers": ...})``; build the topology with
    ``app.stream(...)`` / ``app.table(...)``, then ``app.run()`` (blocking) or
    ``app.start()`` (a background thread). ``store_factory``: makes each task's stores
    (default ``rillet.streams.stores.build``)."""

    def __init__(self, application_id: str, config: Mapping[str, Any] | None = None, *,
                 store_factory: StoreFactory | None = None, **more: Any) -> None:
        self.config: StreamsConfig = streams_config(application_id, config, more)
        self._given = {**dict(config or {}), **more}
        self.application_id = application_id
        self._topology = Topology(self.config.default_key_serde,
                                  self.config.default_value_serde)
        self._store_factory = store_factory
        self.instance_id = uuid.uuid4().hex[:12]
        self.state = CREATED
        self.error: BaseException | None = None
        self.tasks: dict[TaskId, StreamTask] = {}
        self._closing = threading.Event()
        self._done = threading.Event()
        self._run_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._queries: queue.SimpleQueue = queue.SimpleQueue()
        self._counters = {"processed": 0, "skipped": 0, "dead_lettered": 0, "restored": 0,
                          "commits": 0, "migrations": 0}
        self._compiled: CompiledTopology | None = None
        self._partition_counts: dict[str, int] = {}  # set by the runtime at start
        self._directory = Directory(self.instance_id)  # the instances topic's view
        self._runtime: Runtime | None = None

    # ------------------------------------------------------------------ the topology

    @property
    def topology(self) -> Topology:
        return self._topology

    def stream(self, topic: str, **kw: Any):
        return self.topology.stream(topic, **kw)

    def table(self, topic: str, store: str | None = None, **kw: Any):
        return self.topology.table(topic, store, **kw)

    def update_config(self, changes: Mapping[str, Any]) -> None:
        """Change config keys before ``run()`` (``rillet streams run -c key=value``); the
        default serdes are the ones the topology was built with and cannot change."""
        if self.state != CREATED:
            raise StreamsError("update_config() after the app started")
        for key in ("default.key.serde", "default.value.serde"):
            if key in changes or key.replace(".", "_") in changes:
                raise StreamsError(f"{key} cannot change once the topology is built")
        given = {**self._given, **changes}
        self.config = streams_config(self.application_id, given)
        self._given = given

    def describe(self) -> str:
        return self.topology.describe()

    # ------------------------------------------------------------------ running

    def start(self) -> threading.Thread:
        """``run()`` on a background thread; its error (if any) is ``app.error``."""
        if self._thread is not None:
            raise StreamsError("the app was already started")

        def target() -> None:
            try:
                self.run()
            except BaseException:  # noqa: BLE001 - kept in self.error, logged by run()
                pass

        self._thread = threading.Thread(target=target, name=f"rillet-streams-"
                                        f"{self.application_id}", daemon=True)
        self._thread.start()
        return self._thread

    def run(self) -> None:
        """Run until ``close()`` (from another thread or a signal handler). Raises what
        stopped it (after closing the clients), e.g. a DeserializationError under
        log_and_fail or a MissingSourceTopicError."""
        if self.state != CREATED:
            raise StreamsError(f"run() on an app in state {self.state}")
        self._run_thread = threading.get_ident()
        self.state = REBALANCING
        try:
            self._runtime = Runtime(self)
            self._runtime.run()
            self.state = NOT_RUNNING
        except BaseException as exc:
            self.error = exc
            self.state = ERROR
            log.error("streams app %s stopped: %s", self.application_id, exc)
            raise
        finally:
            self._done.set()
            self._fail_queries()

    def close(self, timeout: float | None = None) -> None:
        """Stop: commit, close the tasks and clients. Waits up to ``timeout`` seconds (None:
        until done) unless called on the run thread itself (a signal handler)."""
        self._closing.set()
        if self.state == CREATED:
            self.state = NOT_RUNNING
            return
        if threading.get_ident() != self._run_thread:
            self._done.wait(timeout)
            if self._thread is not None:
                self._thread.join(timeout)

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metrics(self) -> dict[str, int]:
        """Counters since start: processed, skipped (bad records), dead_lettered, restored
        (changelog records applied), commits, migrations; tasks (held now)."""
        out = dict(self._counters)
        for task in list(self.tasks.values()):
            out["processed"] += task.processed
            out["skipped"] += task.skipped
            out["dead_lettered"] += task.dead_lettered
        out["tasks"] = len(self.tasks)
        standbys = None if self._runtime is None else self._runtime.standbys
        out.update(standbys.metrics() if standbys is not None
                   else {"standby_tasks": 0, "standby_records": 0})
        return out

    # ------------------------------------------------------------------ metadata

    def query_metadata_for_key(self, store: str, key: Any,
                               key_serializer: Any = None) -> KeyQueryMetadata:
        """Which instance holds ``key`` of ``store`` (Kafka's queryMetadataForKey): its
        partition (murmur2 of the key serialized with ``key_serializer``, default the
        store's key serde, as the producer partitions), the live instance whose active task
        has it (``active_host``: its ``application.server``) and those with a standby.
        Ask ``active_host`` (this instance when it is ``app.config.application_server``:
        then ``app.store(store)``); None while no live instance holds it."""
        return key_metadata(self, store, key, key_serializer)

    def all_metadata_for_store(self, store: str) -> list[StreamsMetadata]:
        """Every live instance with an active or standby task of ``store``."""
        return [m for m in self.all_metadata()
                if store in m.state_store_names or store in m.standby_state_store_names]

    def all_metadata(self) -> list[StreamsMetadata]:
        """Every live instance of the application (Kafka's metadataForAllStreamsClients):
        known from the instances topic when ``application.server`` or standby replicas
        are set, else this instance only."""
        return all_metadata(self)

    # ------------------------------------------------------------------ queries

    def store(self, name: str) -> StoreView:
        """Interactive query: a read-only view of the ``name`` stores of this instance's
        tasks (a key lives in the task of its partition; other instances hold the rest)."""
        compiled = self._compiled or self._topology.compile(self.config.default_key_serde,
                                                            self.config.default_value_serde)
        known = {name: spec for st in compiled.subtopologies
                 for name, spec in st.stores.items()}
        if name not in known:
            raise KeyError(f"no store {name!r} in the topology (stores: "
                           f"{', '.join(sorted(known)) or 'none'})")
        return StoreView(self, name, known[name].kind)

    def _query(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        if threading.get_ident() == self._run_thread or self.state in (CREATED,):
            return fn()
        if self._done.is_set():
            raise StreamsError(f"the app is not running (state {self.state})")
        future: Future = Future()
        self._queries.put((fn, future))
        return future.result(timeout)

    def _serve_queries(self) -> None:
        while True:
            try:
                fn, future = self._queries.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                future.set_exception(exc)

    def _fail_queries(self) -> None:
        while True:
            try:
                _, future = self._queries.get_nowait()
            except queue.Empty:
                return
            future.set_exception(StreamsError(f"the app stopped (state {self.state})"))


# per store kind: the read methods and whether each returns many items (else one value)
_READS: dict[str, dict[str, bool]] = {
    "kv": {"get": False, "all": True, "range": True, "reverse_range": True,
           "reverse_all": True, "prefix_scan": True, "approximate_num_entries": False},
    "window": {"fetch": False, "fetch_range": True, "fetch_all": True, "all": True,
               "backward_fetch": True},
    "session": {"fetch": True, "find_sessions": True, "all": True},
}


class StoreView:
    """Read-only view over one store name across this instance's tasks: a read returning
    one value gives the first task's non-None answer, one returning items gives every
    task's (a list, by task); ``len()`` sums. Thread-safe: answered by the run thread."""

    def __init__(self, app: App, name: str, kind: str = "kv") -> None:
        self._app = app
        self.name = name
        self.kind = kind

    def _call(self, method: str, many: bool, *args: Any) -> Any:
        def query() -> Any:
            results = []
            for task_id in sorted(self._app.tasks):
                store = self._app.tasks[task_id].stores.get(self.name)
                if store is not None:
                    results.append(getattr(store, method)(*args))
            if method == "__len__":
                return sum(results)
            if many:
                return [item for r in results for item in r]
            return next((r for r in results if r is not None), None)

        return self._app._query(query)

    def __getattr__(self, method: str) -> Callable[..., Any]:
        reads = _READS.get(self.kind, {})
        if method not in reads:
            raise AttributeError(f"{method!r}: a {self.kind} store view is read-only (reads: "
                                 f"{', '.join(sorted(reads))})")
        many = reads[method]
        return lambda *args: self._call(method, many, *args)

    def __len__(self) -> int:
        return self._call("__len__", False)


__all__ = ["App", "StoreView"]
