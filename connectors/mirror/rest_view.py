"""A read-only Kafka Connect REST view of a running ``rillet mirror start`` (docs/mirror.md,
"Connect REST view").

Kafka's MirrorMaker 2 runs as three connectors per flow inside Connect workers, so its state
shows through Connect's REST API. Rillet runs a flow either so (``connect.py``: a worker's
real REST API) or as one loop per flow in its own process (``runner.py``), which is not
under a worker; for that dedicated mode, rather than pretend otherwise, the
mirror process serves the Connect REST paths *read-only* over the flows it runs, with the
same server as the worker's (``connectors/rest.py``), when mm2.properties sets
``listeners = http://127.0.0.1:8083`` (port 0: any free port, written to the state file).
Per flow ``A->B`` three entries, named as MM2's connectors are, with the flow as prefix::

    GET /connectors                     ["A->B.MirrorCheckpointConnector",
                                         "A->B.MirrorHeartbeatConnector",
                                         "A->B.MirrorSourceConnector"]
    GET /connectors?expand=status       {name: {"status": ...}}
    GET /connectors/NAME[/config|/status|/tasks|/tasks/0/status]

The three of a flow share its state, since one loop does their three jobs: ``running`` is
RUNNING, ``starting`` UNASSIGNED, ``retrying`` RESTARTING (a Connect task that failed and is
being restarted) with the error as the task's ``trace``. Every other method answers 405.
The states come from the mirror's state file (``state.py``), so the view needs nothing of
the loop's thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rillet.connectors.errors import NotFoundError
from rillet.connectors.mirror.policy import Flow, MirrorConfig, MirrorConfigError
from rillet.connectors.mirror.state import read_states
from rillet.connectors.rest import HttpError, RestServer

CONNECTORS = ("MirrorSourceConnector", "MirrorCheckpointConnector", "MirrorHeartbeatConnector")
PACKAGE = "org.apache.kafka.connect.mirror."
STATES = {"running": "RUNNING", "starting": "UNASSIGNED", "retrying": "RESTARTING"}


def parse_listener(value: str) -> tuple[str, int]:
    """``http://HOST:PORT`` (MM2's/Connect's ``listeners``, one HTTP listener) -> (host, port)."""
    url = urlsplit(value.strip())
    try:
        port = url.port
    except ValueError:
        port = None
    if url.scheme != "http" or not url.hostname or port is None or url.path not in ("", "/"):
        raise MirrorConfigError(f"listeners must be http://HOST:PORT, got {value!r}")
    return url.hostname, port


class MirrorView:
    """What ``RestServer`` asks a worker, answered from the mirror's flows and state file."""

    def __init__(self, config: MirrorConfig, properties: Path, worker_id: str = "") -> None:
        self.properties = properties
        self.worker_id = worker_id
        self.flows: dict[str, tuple[Flow, str]] = {}
        for f in config.flows:
            for kind in CONNECTORS:
                self.flows[f"{f.source}->{f.target}.{kind}"] = (f, kind)

    def connectors(self) -> list[str]:
        return sorted(self.flows)

    def _get(self, name: str) -> tuple[Flow, str]:
        if name not in self.flows:
            raise NotFoundError(f"connector {name!r} not found")
        return self.flows[name]

    def config_of(self, name: str) -> dict[str, str]:
        f, kind = self._get(name)
        cfg = {"name": name, "connector.class": PACKAGE + kind, "tasks.max": "1",
               "source.cluster.alias": f.source, "target.cluster.alias": f.target,
               "source.cluster.bootstrap.servers": f.source_bootstrap,
               "target.cluster.bootstrap.servers": f.target_bootstrap}
        if kind == "MirrorSourceConnector":
            cfg.update({"topics": f.topics.pattern, "offset.lag.max": str(f.offset_lag_max),
                        "exactly.once.support": "enabled" if f.exactly_once else "disabled",
                        "sync.topic.configs.enabled": str(f.sync_topic_configs).lower(),
                        "refresh.topics.interval.seconds": str(f.refresh_topics_interval_s)})
        elif kind == "MirrorCheckpointConnector":
            cfg.update({"groups": f.groups.pattern,
                        "emit.checkpoints.interval.seconds": str(f.emit_checkpoints_interval_s),
                        "sync.group.offsets.enabled": str(f.sync_group_offsets).lower()})
        else:
            cfg["emit.heartbeats.interval.seconds"] = str(f.emit_heartbeats_interval_s)
        return cfg

    def info(self, name: str) -> dict[str, Any]:
        return {"name": name, "config": self.config_of(name),
                "tasks": [{"connector": name, "task": 0}], "type": "source"}

    def status(self, name: str) -> dict[str, Any]:
        f, _ = self._get(name)
        doc = read_states(self.properties) or {}
        entry = doc.get("flows", {}).get(f"{f.source}->{f.target}") if doc.get("alive") else None
        state = "UNASSIGNED" if entry is None else STATES.get(entry.get("state"), "UNASSIGNED")
        task: dict[str, Any] = {"id": 0, "state": state, "worker_id": self.worker_id}
        if entry is not None and entry.get("error"):
            task["trace"] = entry["error"]
        return {"name": name, "connector": {"state": "RUNNING", "worker_id": self.worker_id},
                "tasks": [task], "type": "source"}

    def task_status(self, name: str, task_id: int) -> dict[str, Any]:
        if task_id != 0:
            self._get(name)
            raise NotFoundError(f"connector {name!r} has no task {task_id}")
        return self.status(name)["tasks"][0]

    def _read_only(self, *_: Any, **__: Any) -> Any:
        raise HttpError(405, "the mirror's Connect REST view is read-only: change "
                             "mm2.properties and restart `rillet mirror start`")

    add_connector = delete = pause = resume = stop_connector = restart = restart_task = \
        get_offsets = alter_offsets = reset_offsets = _read_only


def serve(config: MirrorConfig, properties: Path, listener: str) -> RestServer:
    """Start the view's HTTP server (a daemon thread) on ``listener``."""
    host, port = parse_listener(listener)
    view = MirrorView(config, properties)
    server = RestServer(view, host, port).start()  # type: ignore[arg-type]
    view.worker_id = f"{server.host}:{server.port}"
    return server
