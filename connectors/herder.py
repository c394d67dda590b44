"""The thread-safe face of a worker (Kafka calls it the herder): create, inspect and control
connectors, and manage their offsets. The REST API and tests call it; it talks to the
connector and task actors of :mod:`worker` by ask/tell.

    w = Worker(parse_worker_config({...}))          # clients default to rillet's
    w.add_connector({"name": "src", "connector.class": "file-source", ...})
    w.status("src")  # {"name", "connector": {"state", "worker_id"}, "tasks": [...], "type"}
    w.stop()
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from typing import Any

import pykka
from loguru import logger

from .api import TopicPartition
from .clients import Clients, client_config
from .errors import ConflictError, ConnectConfigError, NotFoundError
from .offsets import POSITIONS, OffsetStore, canonical, sink_partition
from .sink_runtime import sink_group_id
from .validation import ConnectorSpec, validate_connector_config
from .worker import FAILED, PAUSED, RUNNING, STOPPED, ConnectorActor

ASK_TIMEOUT_S = 60
# Kafka's error codes: the group is unknown; it has members / they subscribe to the topic
GROUP_ID_NOT_FOUND = 69
GROUP_IN_USE = (68, 86)


class Worker:
    """One worker process's connectors. Thread-safe (one lock around changes)."""

    def __init__(self, config: Mapping[str, Any], clients: Clients | None = None,
                 worker_id: str | None = None) -> None:
        self.config = dict(config)
        self.clients = clients or Clients.default()
        self.worker_id = worker_id or self.config.get("worker.id") or (
            f"{socket.gethostname()}:{self.config.get('rest.port', 0)}")
        self._connectors: dict[str, tuple[ConnectorSpec, Any]] = {}
        self._lock = threading.RLock()
        self._stopped = False

    # --- connectors ------------------------------------------------------------------------

    def validate(self, raw: Mapping[str, Any]) -> ConnectorSpec:
        return validate_connector_config(raw, self.config)

    def add_connector(self, raw: Mapping[str, Any], initial_state: str = RUNNING,
                      replace: bool = False) -> ConnectorSpec:
        spec = self.validate(raw)
        if initial_state not in (RUNNING, PAUSED, STOPPED):
            raise ConnectConfigError([f"initial_state must be RUNNING, PAUSED or STOPPED, "
                                      f"got {initial_state!r}"])
        with self._lock:
            if spec.name in self._connectors:
                if not replace:
                    raise ConflictError(f"connector {spec.name!r} already exists")
                self._remove(spec.name)
            ref = ConnectorActor.start(spec, self.config, self.clients, self.worker_id,
                                       initial_state)
            self._connectors[spec.name] = (spec, ref)
        logger.info("connector {} added ({})", spec.name, spec.connector_class.__name__)
        return spec

    def connectors(self) -> list[str]:
        with self._lock:
            return sorted(self._connectors)

    def _get(self, name: str) -> tuple[ConnectorSpec, Any]:
        with self._lock:
            try:
                return self._connectors[name]
            except KeyError:
                raise NotFoundError(f"connector {name!r} not found") from None

    def _ask(self, name: str, method: str, *args: Any) -> Any:
        _, ref = self._get(name)
        try:
            return getattr(ref.proxy(), method)(*args).get(timeout=ASK_TIMEOUT_S)
        except pykka.ActorDeadError:
            raise NotFoundError(f"connector {name!r} not found") from None

    def info(self, name: str) -> dict[str, Any]:
        return self._ask(name, "info")

    def config_of(self, name: str) -> dict[str, str]:
        return self.info(name)["config"]

    def status(self, name: str) -> dict[str, Any]:
        spec, _ = self._get(name)
        conn = self._ask(name, "connector_status")
        tasks = [dict(box.value) for box in self._ask(name, "task_boxes")]
        return {"name": name, "connector": conn, "tasks": tasks, "type": spec.type}

    def task_status(self, name: str, task_id: int) -> dict[str, Any]:
        for t in self.status(name)["tasks"]:
            if t["id"] == task_id:
                return t
        raise NotFoundError(f"connector {name!r} has no task {task_id}")

    def pause(self, name: str) -> str:
        """Returns once every task is PAUSED (a paused sink has committed its offsets)."""
        for ref in self._ask(name, "pause"):
            try:
                ref.proxy().pause().get(timeout=ASK_TIMEOUT_S)
            except pykka.ActorDeadError:
                pass
        return self._ask(name, "connector_status")["state"]

    def resume(self, name: str) -> str:
        for ref in self._ask(name, "resume"):
            try:
                ref.proxy().resume().get(timeout=ASK_TIMEOUT_S)
            except pykka.ActorDeadError:
                pass
        return self._ask(name, "connector_status")["state"]

    def stop_connector(self, name: str) -> str:
        return self._ask(name, "stop_connector")

    def restart(self, name: str, include_tasks: bool = False,
                only_failed: bool = False) -> str:
        """Without ``only_failed``: the connector and all its tasks restart. With it: the
        connector restarts (with its tasks) if it FAILED, else with ``include_tasks`` each
        FAILED task restarts."""
        st = self.status(name)
        if not only_failed or st["connector"]["state"] == FAILED:
            return self._ask(name, "restart")
        if include_tasks:
            for t in st["tasks"]:
                if t["state"] == FAILED:
                    self._ask(name, "restart_task", t["id"])
        return self._ask(name, "connector_status")["state"]

    def restart_task(self, name: str, task_id: int) -> None:
        if not self._ask(name, "restart_task", task_id):
            raise NotFoundError(f"connector {name!r} has no task {task_id}")

    def delete(self, name: str) -> None:
        with self._lock:
            self._get(name)
            self._remove(name)
        logger.info("connector {} deleted", name)

    def _remove(self, name: str) -> None:
        _, ref = self._connectors.pop(name)
        try:
            ref.stop(block=True, timeout=ASK_TIMEOUT_S)
        except pykka.ActorDeadError:
            pass

    def stop(self) -> None:
        """Stop every connector (tasks commit their offsets) and the actors."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            for name in list(self._connectors):
                try:
                    self._remove(name)
                except Exception as e:
                    logger.warning("stopping connector {} failed: {}", name, e)

    # --- offsets (KIP-875) ----------------------------------------------------------------

    def get_offsets(self, name: str) -> dict[str, Any]:
        spec, _ = self._get(name)
        if spec.is_sink:  # a sink's offsets are its consumer group's committed offsets
            got = self._group_call(lambda a, g: a.list_consumer_group_offsets(g), spec)
            return {"offsets": [
                {"partition": sink_partition(tp[0], tp[1]), "offset": {"kafka_offset": off}}
                for tp, off in sorted(got.items())]}
        store = OffsetStore(self.clients, self.config)
        try:
            stored = store.read(name)
        finally:
            store.close()
        entries = []
        for (_conn, pkey), off in sorted(stored.items()):
            if POSITIONS in pkey:
                continue
            entries.append({"partition": json.loads(pkey), "offset": off})
        return {"offsets": entries}

    def _group_call(self, fn: Any, spec: ConnectorSpec) -> Any:
        """``fn(admin, group_id)`` for the sink connector's consumer group."""
        admin = self.clients.admin(client_config(self.config, "admin"))
        try:
            return fn(admin, sink_group_id(spec.config))
        except Exception as e:
            if (type(e).__name__ == "IllegalStateError"
                    or getattr(e, "code", None) in GROUP_IN_USE):
                raise ConflictError(str(e)) from e
            raise
        finally:
            admin.close()

    def _require_stopped(self, name: str) -> ConnectorSpec:
        spec, _ = self._get(name)
        state = self._ask(name, "connector_status")["state"]
        # a sink's paused tasks are still members of its group, which then refuses changes
        allowed = (STOPPED, FAILED) if spec.is_sink else (STOPPED, PAUSED, FAILED)
        if state not in allowed:
            raise ConflictError(f"connector {name!r} is {state}: stop it first "
                                f"(PUT /connectors/{name}/stop) to change its offsets")
        return spec

    def alter_offsets(self, name: str, entries: list[Mapping[str, Any]]) -> dict[str, str]:
        """``entries``: ``[{"partition": {...}, "offset": {...} | None}]`` (Kafka's body)."""
        spec = self._require_stopped(name)
        parsed = []
        problems = []
        for e in entries:
            part, off = e.get("partition"), e.get("offset")
            if not isinstance(part, dict) or not (off is None or isinstance(off, dict)):
                problems.append(f"bad entry {e!r}: needs a partition object and an offset "
                                "object (or null)")
                continue
            if spec.is_sink:
                try:
                    tp = TopicPartition(str(part["kafka_topic"]), int(part["kafka_partition"]))
                    value = None if off is None else int(off["kafka_offset"])
                except (KeyError, TypeError, ValueError):
                    problems.append(f"bad sink entry {e!r}: partition needs kafka_topic and "
                                    "kafka_partition, offset needs kafka_offset")
                    continue
                parsed.append((sink_partition(*tp), off, tp, value))
            else:
                parsed.append((part, off, None, None))
        if problems:
            raise ConnectConfigError(problems, source="offsets")
        if not spec.is_sink:
            # the exactly-once scan positions describe the old offsets: drop them
            store = OffsetStore(self.clients, self.config)
            try:
                parsed += [(json.loads(pkey), None, None, None)
                           for (_c, pkey) in store.read(name) if POSITIONS in pkey]
            finally:
                store.close()
        self._apply_offsets(spec, parsed)
        return {"message": "The offsets for this connector have been altered successfully"}

    def reset_offsets(self, name: str) -> dict[str, str]:
        spec = self._require_stopped(name)
        if spec.is_sink:
            got = self._group_call(lambda a, g: a.list_consumer_group_offsets(g), spec)
            tps = [TopicPartition(tp[0], tp[1]) for tp in got]
            self._apply_offsets(spec, [(sink_partition(*tp), None, tp, None) for tp in tps])
            return {"message": "The offsets for this connector have been reset successfully"}
        store = OffsetStore(self.clients, self.config)
        try:
            stored = store.read(name)
        finally:
            store.close()
        parsed = []
        for (_c, pkey), _off in stored.items():
            part = json.loads(pkey)
            tp = (TopicPartition(part["kafka_topic"], int(part["kafka_partition"]))
                  if spec.is_sink and "kafka_topic" in part else None)
            parsed.append((part, None, tp, None))
        self._apply_offsets(spec, parsed)
        return {"message": "The offsets for this connector have been reset successfully"}

    def _apply_offsets(self, spec: ConnectorSpec, parsed: list[tuple]) -> None:
        connector = spec.connector_class()
        if spec.is_sink:
            ok = connector.alter_offsets(dict(spec.config),
                                         {tp: v for _, _, tp, v in parsed if tp is not None})
        else:
            ok = connector.alter_offsets(dict(spec.config), {
                canonical(p): o for p, o, _, _ in parsed if POSITIONS not in p})
        if not ok:
            raise ConflictError(f"connector {spec.name!r} refused to alter its offsets")
        if spec.is_sink:  # the group's committed offsets (a task resumes from them)
            alter = {tp: v for _, _, tp, v in parsed if v is not None}
            drop = [tp for _, _, tp, v in parsed if v is None]
            if alter:
                self._group_call(lambda a, g: a.alter_consumer_group_offsets(g, alter), spec)
            if drop:
                try:
                    self._group_call(lambda a, g: a.delete_consumer_group_offsets(g, drop),
                                     spec)
                except Exception as e:  # no group: nothing to delete
                    if getattr(e, "code", None) != GROUP_ID_NOT_FOUND:
                        raise
            self._ask(spec.name, "offsets_changed")
            return
        store = OffsetStore(self.clients, self.config)
        try:
            futures = [store.write(spec.name, p, o) for p, o, _, _ in parsed]
            store.flush()
            for f in futures:
                f.get(timeout=ASK_TIMEOUT_S)
        finally:
            store.close()
        self._ask(spec.name, "offsets_changed")


__all__ = ["Worker", "RUNNING", "PAUSED", "STOPPED", "FAILED"]
