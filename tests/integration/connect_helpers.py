"""Connect integration helpers shared by the Connect test modules: a real `rillet connect
standalone` worker process, a JSON config writer and a background appender of input."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class WorkerProcess:
    """``python -m rillet.cli.connect standalone WORKER CONNECTORS...`` in its own session."""

    def __init__(self, workdir: Path, worker_config: Path, connector_configs: list[Path]):
        self.workdir = workdir
        self.args = [sys.executable, "-m", "rillet.cli.connect", "standalone",
                     str(worker_config), *map(str, connector_configs)]
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.starts = 0

    def start(self, timeout: float = 30) -> str:
        self.starts += 1
        log = open(self.workdir / f"worker-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log,
                                     text=True, cwd=self.workdir, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        lines: queue.Queue[str] = queue.Queue()
        out = self.proc.stdout

        def pump() -> None:
            for line in out:
                lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("REST API listening on "):
                self.url = line.split()[-1]
                return self.url
        raise AssertionError(f"worker did not start: {self.log_tail()}")

    def log_tail(self, n: int = 30) -> str:
        text = (self.workdir / f"worker-{self.starts}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-n:])

    def kill(self) -> None:
        """SIGKILL: no flush, no commit."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def rest(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def write_json(path: Path, obj: dict) -> Path:
    path.write_text(json.dumps(obj, indent=1))
    return path


class Appender(threading.Thread):
    """Appends ``total`` lines (or rows) in small steps while the pipeline runs."""

    def __init__(self, write_step, total: int, step: int = 20, pause_s: float = 0.04):
        super().__init__(daemon=True)
        self.write_step, self.total, self.step, self.pause_s = write_step, total, step, pause_s
        self.written = 0

    def run(self) -> None:
        while self.written < self.total:
            n = min(self.step, self.total - self.written)
            self.write_step(self.written, n)
            self.written += n
            time.sleep(self.pause_s)
