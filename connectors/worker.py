"""The Connect worker: one pykka actor per connector and one per task.

Task states (Kafka's): UNASSIGNED -> RUNNING <-> PAUSED; RUNNING -> FAILED (with a trace);
a connector may also be STOPPED (its tasks shut down, its config kept: the state in which
offsets may be altered). Legal transitions, checked by :func:`transition`::

    UNASSIGNED -> RUNNING | PAUSED | FAILED | STOPPED | RESTARTING
    RUNNING    -> PAUSED | FAILED | STOPPED | RESTARTING
    PAUSED     -> RUNNING | FAILED | STOPPED
    RESTARTING -> RUNNING | PAUSED | FAILED
    FAILED     -> (restart only: a new actor starts UNASSIGNED)
    STOPPED    -> RUNNING | PAUSED

A task whose start or iteration fails with a *retriable* error (the cluster is unreachable,
a request timed out) is not failed: its runner is stopped and started again (state
RESTARTING, backoff doubling from 1 s to 30 s), which re-reads the stored offsets, so nothing
polled in the interrupted iteration is lost. Non-retriable errors, and records that exceed
errors.tolerance, fail the task (FAILED, with the trace in its status).

A task actor drives its runner (source_runtime / sink_runtime) by sending itself ticks; a
shared scheduler thread delivers delayed ticks, so pause/resume/status/stop messages are handled between
iterations. Pausing bumps a generation counter that turns outstanding ticks into no-ops. No
actor waits for another actor's reply except the connector actor stopping its own tasks.
The Worker object is the thread-safe face used by the REST API and the CLI.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import traceback
from typing import Any

import pykka
from loguru import logger

from rillet.frozen import frozen

from .errors import is_retriable
from .sink_runtime import WorkerSinkTask
from .source_runtime import WorkerSourceTask
from .validation import ConnectorSpec

UNASSIGNED, RUNNING, PAUSED, FAILED, STOPPED, RESTARTING = (
    "UNASSIGNED", "RUNNING", "PAUSED", "FAILED", "STOPPED", "RESTARTING")

TRANSITIONS = {
    UNASSIGNED: {RUNNING, PAUSED, FAILED, STOPPED, RESTARTING},
    RUNNING: {PAUSED, FAILED, STOPPED, RESTARTING},
    PAUSED: {RUNNING, FAILED, STOPPED},
    RESTARTING: {RUNNING, PAUSED, FAILED},
    FAILED: set(),
    STOPPED: {RUNNING, PAUSED},
}
MAX_RESTART_BACKOFF_MS = 30000


class IllegalTransitionError(Exception):
    pass


def transition(current: str, new: str) -> str:
    if new != current and new not in TRANSITIONS[current]:
        raise IllegalTransitionError(f"{current} -> {new}")
    return new


def format_trace(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


class Scheduler:
    """One daemon thread that runs ``fn(*args)`` after a delay, for every task of the
    process (rather than a timer thread per delayed tick). Stale ticks are harmless: a task
    ignores ticks of an old generation, and telling a stopped actor is caught."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any, tuple]] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay_s: float, fn: Any, *args: Any) -> None:
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="connect-scheduler",
                                                daemon=True)
                self._thread.start()
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._seq), fn, args))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                due = self._heap[0][0]
                now = time.monotonic()
                if due > now:
                    self._cv.wait(due - now)
                    continue
                _, _, fn, args = heapq.heappop(self._heap)
            try:
                fn(*args)
            except Exception as e:  # a callback must never kill the scheduler
                logger.warning("scheduled call failed: {}", e)


SCHEDULER = Scheduler()


class StatusBox:
    """A task's last published status: written by its actor, read by any thread without a
    message, so a status request never waits for a busy task."""

    def __init__(self, task_id: int, worker_id: str) -> None:
        self.value: dict[str, Any] = {"id": task_id, "state": UNASSIGNED,
                                      "worker_id": worker_id}


@frozen
class _TaskHandle:
    ref: Any
    stop_event: threading.Event
    box: StatusBox


@frozen
class _Tick:
    generation: int


@frozen
class _Restart:
    generation: int


class TaskActor(pykka.ThreadingActor):
    """Hosts one WorkerSourceTask / WorkerSinkTask (``runner``)."""

    def __init__(self, runner: Any, connector: str, task_id: int, worker_id: str,
                 stop_event: threading.Event, paused: bool = False,
                 box: StatusBox | None = None) -> None:
        super().__init__()
        self.box = box or StatusBox(task_id, worker_id)
        self.runner = runner
        self.connector = connector
        self.task_id = task_id
        self.worker_id = worker_id
        self.stop_event = stop_event
        self.start_paused = paused
        self.state = UNASSIGNED
        self.trace: str | None = None
        self.generation = 0
        self.restarts = 0
        self.log = logger.bind(connector=connector, task=task_id)

    def on_start(self) -> None:
        self._start_runner()

    def _start_runner(self) -> None:
        try:
            self.runner.start()
        except Exception as e:
            self._error(e)
            return
        self.restarts = 0
        self._set(PAUSED if self.start_paused else RUNNING)
        if self.state == RUNNING:
            self._schedule(0)

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Restart):
            if message.generation == self.generation and self.state == RESTARTING:
                self._start_runner()
            return
        if not isinstance(message, _Tick):
            return
        if message.generation != self.generation or self.state != RUNNING:
            return
        try:
            wait_ms = self.runner.iterate()
        except Exception as e:
            self._error(e)
            return
        self._schedule(wait_ms)

    def _error(self, error: BaseException) -> None:
        if not is_retriable(error) or self.stop_event.is_set():
            self._fail(error)
            return
        self.generation += 1
        self.restarts += 1
        delay = min(1000 << min(self.restarts - 1, 5), MAX_RESTART_BACKOFF_MS)
        self.trace = format_trace(error)
        self.log.warning("task {}-{}: retriable error ({}: {}); restarting it in {} ms",
                         self.connector, self.task_id, type(error).__name__, error, delay)
        try:
            self.runner.stop()
        except Exception as e:
            self.log.warning("stopping task failed: {}", e)
        self.start_paused = False
        self._set(RESTARTING)
        self._schedule(delay, _Restart)

    def on_stop(self) -> None:
        self.generation += 1
        try:
            self.runner.stop()
        except Exception as e:
            self.log.warning("stopping task failed: {}", e)

    def on_failure(self, exception_type: Any, exception_value: Any, tb: Any) -> None:
        self.log.error("task actor crashed: {}", exception_value)

    # --- commands (called through proxies) -------------------------------------------------

    def pause(self) -> str:
        if self.state == RUNNING:
            self.generation += 1
            self._set(PAUSED)
            commit = getattr(self.runner, "commit", None)
            if not getattr(self.runner, "assigned", None):
                commit = getattr(self.runner, "on_pause", None)  # a source: end its transaction
            if commit is not None:
                try:
                    commit()
                except Exception as e:
                    self._fail(e)
        return self.state

    def resume(self) -> str:
        if self.state == PAUSED:
            self.generation += 1
            self._set(RUNNING)
            self._schedule(0)
        return self.state

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.task_id, "state": self.state,
                               "worker_id": self.worker_id}
        if self.trace and self.state in (FAILED, RESTARTING):
            out["trace"] = self.trace
        return out

    # --- internals -------------------------------------------------------------------------

    def _set(self, state: str) -> None:
        self.state = transition(self.state, state)
        self.box.value = self.status()  # one atomic reference swap
        self.log.info("task {}-{} is {}", self.connector, self.task_id, state)

    def _fail(self, error: BaseException) -> None:
        self.generation += 1
        self.trace = format_trace(error)
        self.log.error("task {}-{} failed: {}: {}", self.connector, self.task_id,
                       type(error).__name__, error)
        self._set(FAILED)
        if getattr(self.runner, "release_on_failure", False):
            try:  # a failed sink task leaves its group: its partitions go to the other tasks
                self.runner.stop()
            except Exception as e:
                self.log.warning("stopping failed task {}-{}: {}", self.connector, self.task_id,
                                 e)

    def _schedule(self, wait_ms: int, kind: type = _Tick) -> None:
        message = kind(self.generation)
        if wait_ms <= 0:
            self.actor_ref.tell(message)
            return
        SCHEDULER.call_later(wait_ms / 1000, self._tell_later, message)

    def _tell_later(self, message: Any) -> None:
        try:
            self.actor_ref.tell(message)
        except pykka.ActorDeadError:
            pass


class _ConnectorContext:
    def __init__(self, name: str) -> None:
        self.connector_name = name

    def request_task_reconfiguration(self) -> None:
        logger.info("connector {} asked for task reconfiguration (restart it to apply)",
                    self.connector_name)


class ConnectorActor(pykka.ThreadingActor):
    """Hosts one connector instance and supervises its task actors."""

    def __init__(self, spec: ConnectorSpec, worker: dict[str, Any], clients: Any,
                 worker_id: str, initial_state: str = RUNNING) -> None:
        super().__init__()
        self.spec = spec
        self.worker = worker
        self.clients = clients
        self.worker_id = worker_id
        self.initial_state = initial_state
        self.state = UNASSIGNED
        self.trace: str | None = None
        self.connector: Any = None
        self.task_configs: list[dict[str, Any]] = []
        self.tasks: list[_TaskHandle] = []
        self.restart_tasks_on_resume = False
        self.log = logger.bind(connector=spec.name)

    def on_start(self) -> None:
        if not self._start_connector():
            return
        if self.initial_state == STOPPED:
            self._set(STOPPED)
            return
        self._start_tasks(paused=self.initial_state == PAUSED)
        self._set(PAUSED if self.initial_state == PAUSED else RUNNING)

    def on_stop(self) -> None:
        self._stop_tasks()
        self._stop_connector()

    # --- commands --------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"name": self.spec.name, "config": _public_config(self.spec),
                "tasks": [{"connector": self.spec.name, "task": i}
                          for i in range(len(self.tasks))], "type": self.spec.type}

    def connector_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "worker_id": self.worker_id}
        if self.trace:
            out["trace"] = self.trace
        return out

    def task_refs(self) -> list[Any]:
        return [t.ref for t in self.tasks]

    def task_boxes(self) -> list[StatusBox]:
        return [t.box for t in self.tasks]

    def pause(self) -> list[Any]:
        """Marks the connector PAUSED; returns the task actors for the caller to pause (so
        this actor never waits for another's reply)."""
        if self.state == RUNNING:
            self._set(PAUSED)
            return self.task_refs()
        return []

    def resume(self) -> list[Any]:
        """Marks the connector RUNNING; returns the task actors the caller must resume."""
        if self.state == STOPPED or (self.state == PAUSED and self.restart_tasks_on_resume):
            self._stop_tasks()
            self._start_tasks(paused=False)
            self.restart_tasks_on_resume = False
            self._set(RUNNING)
        elif self.state == PAUSED:
            self._set(RUNNING)
            return self.task_refs()
        return []

    def stop_connector(self) -> str:
        """Kafka's PUT /stop: shut the tasks down, keep the connector (offsets may change)."""
        if self.state in (RUNNING, PAUSED):
            self._stop_tasks()
            self._set(STOPPED)
        return self.state

    def offsets_changed(self) -> None:
        self.restart_tasks_on_resume = True

    def restart(self) -> str:
        """Restart the connector instance and all its tasks (new task actors)."""
        self._stop_tasks()
        self._stop_connector()
        self.state, self.trace = UNASSIGNED, None
        if self._start_connector():
            self._start_tasks(paused=False)
            self._set(RUNNING)
        return self.state

    def restart_task(self, task_id: int) -> bool:
        if not 0 <= task_id < len(self.tasks):
            return False
        old = self.tasks[task_id]
        old.stop_event.set()
        try:
            old.ref.stop(block=True, timeout=30)
        except pykka.ActorDeadError:
            pass
        self.tasks[task_id] = self._spawn(task_id, paused=self.state == PAUSED)
        return True

    # --- internals -------------------------------------------------------------------------

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = transition(self.state, state)
            self.log.info("connector {} is {}", self.spec.name, state)

    def _start_connector(self) -> bool:
        try:
            self.connector = self.spec.connector_class()
            self.connector.context = _ConnectorContext(self.spec.name)
            self.connector.start(dict(self.spec.config))
            n = self.spec.config["tasks.max"]
            self.task_configs = list(self.connector.task_configs(n))[:n]
            return True
        except Exception as e:
            self.trace = format_trace(e)
            self.log.error("connector {} failed to start: {}", self.spec.name, e)
            self.state = FAILED
            return False

    def _stop_connector(self) -> None:
        if self.connector is not None:
            try:
                self.connector.stop()
            except Exception as e:
                self.log.warning("connector stop failed: {}", e)
            self.connector = None

    def _spawn(self, task_id: int, paused: bool) -> _TaskHandle:
        ev = threading.Event()
        cfg = {**self.spec.config, **self.task_configs[task_id]}
        cls = self.connector.task_class()
        common = dict(worker=self.worker, clients=self.clients, task_factory=cls,
                      sleep=ev.wait, stopping=ev.is_set)
        if self.spec.is_sink:
            runner = WorkerSinkTask(self.spec, task_id, len(self.task_configs), cfg, **common)
        else:
            runner = WorkerSourceTask(self.spec, task_id, cfg, **common)
        box = StatusBox(task_id, self.worker_id)
        ref = TaskActor.start(runner, self.spec.name, task_id, self.worker_id, ev, paused, box)
        return _TaskHandle(ref, ev, box)

    def _start_tasks(self, paused: bool) -> None:
        self.tasks = [self._spawn(i, paused) for i in range(len(self.task_configs))]

    def _stop_tasks(self) -> None:
        for t in self.tasks:
            t.stop_event.set()  # cut retry backoffs short
        for t in self.tasks:
            try:
                t.ref.stop(block=True, timeout=30)
            except pykka.ActorDeadError:
                pass
            except pykka.Timeout:
                self.log.warning("a task did not stop within 30 s")
        self.tasks = []


SECRET_WORDS = ("password", "secret", "token")


def _public_config(spec: ConnectorSpec) -> dict[str, str]:
    """The config as given, as strings (secrets hidden), as Kafka shows it."""
    out = {}
    for k, v in (spec.raw or spec.config).items():
        if v is None:
            continue
        if any(w in k for w in SECRET_WORDS):
            out[k] = "[hidden]"
        elif isinstance(v, list):
            out[k] = ",".join(map(str, v))
        elif isinstance(v, bool):
            out[k] = str(v).lower()
        else:
            out[k] = str(v)
    return out
