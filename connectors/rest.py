"""The worker's REST API (Kafka Connect's paths and JSON shapes), on stdlib http.server.

    GET    /                                   {"version", "commit", "kafka_cluster_id"}
    GET    /connectors[?expand=status]         names, or {name: {"status": ...}}
    POST   /connectors                         {"name", "config", "initial_state"?} -> 201
    GET    /connectors/NAME                    {"name", "config", "tasks", "type"}
    GET    /connectors/NAME/config
    PUT    /connectors/NAME/config             create or replace
    GET    /connectors/NAME/status             connector and task states, error traces
    GET    /connectors/NAME/tasks/ID/status
    PUT    /connectors/NAME/pause | resume | stop                               -> 202
    POST   /connectors/NAME/restart[?includeTasks=true&onlyFailed=true]         -> 202
    POST   /connectors/NAME/tasks/ID/restart                                    -> 204
    DELETE /connectors/NAME                                                     -> 204
    GET | PATCH | DELETE /connectors/NAME/offsets   (PATCH/DELETE need STOPPED or PAUSED)
    GET    /connector-plugins

Errors answer ``{"error_code": <http status>, "message": "..."}``. The server binds
``rest.host.name`` (127.0.0.1) on ``rest.port`` (0: a free port, see :attr:`RestServer.port`);
each request is served on its own thread and calls the thread-safe :class:`Worker`.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from loguru import logger

from .errors import ConflictError, ConnectConfigError, NotFoundError
from .herder import Worker
from .plugins import CONNECTOR_ALIASES

VERSION = "0.1.0"
MAX_BODY = 1 << 20


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class RestServer:
    def __init__(self, worker: Worker, host: str = "127.0.0.1", port: int = 8083) -> None:
        self.worker = worker
        handler = type("Handler", (_Handler,), {"worker": worker})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> RestServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        name="connect-rest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    worker: Worker
    server_version = "rillet-connect/" + VERSION

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("rest: {}", format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing --------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            status, body = self._route(method, parts, query)
        except HttpError as e:
            status, body = e.status, {"error_code": e.status, "message": str(e)}
        except NotFoundError as e:
            status, body = 404, {"error_code": 404, "message": str(e)}
        except ConflictError as e:
            status, body = 409, {"error_code": 409, "message": str(e)}
        except ConnectConfigError as e:
            status, body = 400, {"error_code": 400, "message": str(e)}
        except Exception as e:  # never let a request kill the server
            logger.exception("REST {} {} failed", method, self.path)
            status, body = 500, {"error_code": 500, "message": f"{type(e).__name__}: {e}"}
        self._send(status, body)

    def _send(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise HttpError(413, "request body too large")
        raw = self.rfile.read(n) if n else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError as e:
            raise HttpError(400, f"the body is not valid JSON: {e}") from e

    def _route(self, method: str, parts: list[str], q: dict[str, str]) -> tuple[int, Any]:
        w = self.worker
        if not parts:
            if method == "GET":
                return 200, {"version": VERSION, "commit": "", "kafka_cluster_id": None}
            raise HttpError(405, "method not allowed")
        if parts == ["connector-plugins"] and method == "GET":
            return 200, [{"class": target, "alias": alias,
                          "type": "sink" if "sink" in alias.lower() else "source"}
                         for alias, target in sorted(CONNECTOR_ALIASES.items())
                         if "-" in alias]
        if parts[0] != "connectors":
            raise HttpError(404, f"no such path: /{'/'.join(parts)}")
        if len(parts) == 1:
            if method == "GET":
                names = w.connectors()
                if q.get("expand") == "status":
                    return 200, {n: {"status": w.status(n)} for n in names}
                return 200, names
            if method == "POST":
                body = self._body()
                if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
                    raise HttpError(400, 'expected {"name": ..., "config": {...}}')
                cfg = dict(body["config"])
                if body.get("name"):
                    cfg["name"] = body["name"]
                spec = w.add_connector(cfg, body.get("initial_state") or "RUNNING")
                return 201, w.info(spec.name)
            raise HttpError(405, "method not allowed")
        name, rest = parts[1], parts[2:]
        if not rest:
            if method == "GET":
                return 200, w.info(name)
            if method == "DELETE":
                w.delete(name)
                return 204, None
        elif rest == ["config"]:
            if method == "GET":
                return 200, w.config_of(name)
            if method == "PUT":
                body = self._body()
                if not isinstance(body, dict):
                    raise HttpError(400, "expected a JSON object of config keys")
                existed = name in w.connectors()
                w.add_connector({**body, "name": name}, replace=True)
                return (200 if existed else 201), w.info(name)
        elif rest == ["status"] and method == "GET":
            return 200, w.status(name)
        elif rest in (["pause"], ["resume"], ["stop"]) and method == "PUT":
            {"pause": w.pause, "resume": w.resume, "stop": w.stop_connector}[rest[0]](name)
            return 202, None
        elif rest == ["restart"] and method == "POST":
            w.restart(name, q.get("includeTasks", "false") == "true",
                      q.get("onlyFailed", "false") == "true")
            return 202, w.status(name)
        elif len(rest) == 3 and rest[0] == "tasks" and rest[1].isdigit():
            if rest[2] == "status" and method == "GET":
                return 200, w.task_status(name, int(rest[1]))
            if rest[2] == "restart" and method == "POST":
                w.restart_task(name, int(rest[1]))
                return 204, None
        elif rest == ["tasks"] and method == "GET":
            return 200, [{"id": {"connector": name, "task": t["id"]}}
                         for t in w.status(name)["tasks"]]
        elif rest == ["offsets"]:
            if method == "GET":
                return 200, w.get_offsets(name)
            if method == "PATCH":
                body = self._body()
                if not isinstance(body, dict) or not isinstance(body.get("offsets"), list):
                    raise HttpError(400, 'expected {"offsets": [{"partition": ..., '
                                         '"offset": ...}]}')
                return 200, w.alter_offsets(name, body["offsets"])
            if method == "DELETE":
                return 200, w.reset_offsets(name)
        else:
            raise HttpError(404, f"no such path: /{'/'.join(parts)}")
        raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
