"""The console's Starlette application: JSON under ``/api``, the static page at ``/``.

Starlette (with uvicorn) rather than Flask: it is small, its sync endpoints run in a thread
pool (the Admin calls block), and its TestClient drives the app in-process for fast tests.
Errors come back as ``{"error": "..."}`` with 400 (bad input), 404 (unknown thing) or 502
(the cluster or Connect did not answer as asked).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rillet.console.data import BadRequest, ClusterView, NotFound
from rillet.console.rates import MetricRates
from rillet.errors import RilletError

STATIC = Path(__file__).parent / "static"


def _int(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}") from None


def _guard(fn):
    def run(request: Request):
        try:
            return JSONResponse(fn(request))
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except (RilletError, OSError) as exc:
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=502)
    return run


class _Connect:
    """A Kafka Connect REST API (``--connect-url``): status, pause, resume, restart."""

    def __init__(self, url: str | None) -> None:
        self.url = url.rstrip("/") if url else None

    def call(self, method: str, path: str) -> Any:
        if not self.url:
            raise BadRequest("no Connect REST URL: start the console with --connect-url")
        req = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - operator URL
                body = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code == 404:
                raise NotFound(f"Connect: {detail or 'not found'}") from None
            raise BadRequest(f"Connect answered {exc.code}: {detail}") from None
        except urllib.error.URLError as exc:
            raise OSError(f"Connect at {self.url} did not answer: {exc.reason}") from None
        return json.loads(body) if body.strip() else {}


def make_app(view: ClusterView, connect_url: str | None = None,
             rates: MetricRates | None = None) -> Starlette:
    """``rates``: the brokers' metrics endpoints (rillet/console/rates.py); without them the
    throughput chart falls back to log end offsets (messages in per topic only)."""
    connect = _Connect(connect_url)

    def index(request: Request):
        return FileResponse(STATIC / "index.html")

    def overview(request):
        return {**view.overview(), "bootstrap": view.bootstrap,
                "connect_url": connect.url}

    def topics(request):
        return view.topics()

    def topic(request):
        return view.topic(request.path_params["name"])

    def messages(request):
        return view.messages(
            request.path_params["name"], _int(request, "partition", 0),
            offset=_int(request, "offset"), timestamp=_int(request, "timestamp"),
            limit=_int(request, "limit", 50))

    def delete_topic(request):
        view.delete_topic(request.path_params["name"], request.query_params.get("confirm"))
        return {"deleted": request.path_params["name"]}

    def groups(request):
        return view.groups()

    def group(request):
        return view.group(request.path_params["name"])

    def reset_group(request):
        return view.reset_offsets(request.path_params["name"],
                                  request.query_params.get("to", ""),
                                  request.query_params.get("confirm"))

    def throughput(request):
        return rates.sample() if rates is not None else view.throughput()

    def connectors(request):
        names = connect.call("GET", "/connectors")
        out = []
        for name in names:
            status = connect.call("GET", f"/connectors/{urllib.parse.quote(name)}/status")
            out.append({"name": name, "state": status.get("connector", {}).get("state"),
                        "worker": status.get("connector", {}).get("worker_id"),
                        "tasks": status.get("tasks", [])})
        return out

    def connector_action(request):
        name, action = request.path_params["name"], request.path_params["action"]
        quoted = urllib.parse.quote(name)
        if action in ("pause", "resume"):
            connect.call("PUT", f"/connectors/{quoted}/{action}")
        elif action == "restart":
            connect.call("POST", f"/connectors/{quoted}/restart")
        else:
            raise BadRequest(f"unknown connector action {action!r} (pause, resume, restart)")
        return {"connector": name, "action": action}

    g = _guard
    routes = [
        Route("/", index),
        Route("/api/overview", g(overview)),
        Route("/api/topics", g(topics)),
        Route("/api/topics/{name}", g(topic)),
        Route("/api/topics/{name}/messages", g(messages)),
        Route("/api/topics/{name}/delete", g(delete_topic), methods=["POST"]),
        Route("/api/groups", g(groups)),
        Route("/api/groups/{name}", g(group)),
        Route("/api/groups/{name}/reset-offsets", g(reset_group), methods=["POST"]),
        Route("/api/throughput", g(throughput)),
        Route("/api/connectors", g(connectors)),
        Route("/api/connectors/{name}/{action}", g(connector_action), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
