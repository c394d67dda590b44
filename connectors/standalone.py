"""``rillet connect standalone WORKER_CONFIG CONNECTOR_CONFIG...``: one worker process.

Every config is read and validated before anything starts (all problems are printed, exit
status 2). Then the REST API starts (``rest.port`` 0 picks a free port) and prints
``REST API listening on http://127.0.0.1:PORT``, the connectors start, and the process runs
until SIGINT/SIGTERM, when every task commits its offsets and stops.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loguru import logger

from .clients import Clients
from .config import load_config_file, parse_worker_config
from .errors import ConnectConfigError
from .herder import Worker
from .rest import RestServer
from .validation import validate_connector_config


def add_plugin_paths(dirs: Sequence[str]) -> list[str]:
    """Make ``module:Class`` plugins importable from each ``plugin.path`` directory and from
    the working directory (where a user runs `rillet connect standalone` next to their
    connector module; the console script, unlike `python -m`, does not put it on sys.path).
    Returns a problem per directory that does not exist."""
    problems = []
    wanted = []
    for d in dirs:
        path = Path(d).expanduser().resolve()
        if not path.is_dir():
            problems.append(f"plugin.path: {d!r} is not a directory")
        wanted.append(str(path))
    wanted.append(os.getcwd())
    for path in wanted:  # after the installed packages: a plugin never shadows them
        if path not in sys.path:
            sys.path.append(path)
    return problems


def load_all(worker_path: str | Path, connector_paths: Sequence[str | Path]
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The typed worker config and the raw connector configs, all validated."""
    problems: list[str] = []
    worker: dict[str, Any] = {}
    try:
        worker = parse_worker_config(load_config_file(worker_path), source=str(worker_path))
    except ConnectConfigError as e:
        problems.append(str(e))
    problems += add_plugin_paths(worker.get("plugin.path", []))
    connectors = []
    names: set[str] = set()
    for p in connector_paths:
        try:
            raw = load_config_file(p)
            spec = validate_connector_config(raw, worker)
            if spec.name in names:
                raise ConnectConfigError([f"connector name {spec.name!r} is used twice"],
                                         source=str(p))
            names.add(spec.name)
            connectors.append(raw)
        except ConnectConfigError as e:
            problems.append(f"{p}: {e}")
    if problems:
        raise ConnectConfigError(problems, source="configuration")
    return worker, connectors


def run_standalone(worker_path: str, connector_paths: Sequence[str],
                   clients: Clients | None = None, stop: threading.Event | None = None,
                   out: Any = None) -> int:
    out = out or sys.stdout
    worker_cfg, connectors = load_all(worker_path, connector_paths)
    stop = stop or threading.Event()
    worker = Worker(worker_cfg, clients)
    rest = RestServer(worker, worker_cfg["rest.host.name"], worker_cfg["rest.port"])
    worker.worker_id = f"{rest.host}:{rest.port}"
    rest.start()
    print(f"REST API listening on {rest.url}", file=out, flush=True)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    try:
        for raw in connectors:
            spec = worker.add_connector(raw)
            print(f"connector {spec.name} started ({spec.type}, "
                  f"tasks.max={spec.config['tasks.max']})", file=out, flush=True)
        stop.wait()
    finally:
        logger.info("worker stopping")
        worker.stop()
        rest.stop()
        print("worker stopped", file=out, flush=True)
    return 0
