"""A streams application (docs/streams.md "Running"): ``App(application_id, config)``, its
topology, and the runtime that runs it: a consumer in a group named after the application id
(range assignor: co-partitioned inputs land together), one task per (sub-topology, input
partition) it holds, a producer (transactional under exactly_once), commits every
``commit.interval.ms``, stores restored from their changelogs, ``app.store(name)`` for
interactive queries.

SKELETON (lead): implemented by the runtime helper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .topology import Topology


class App:
    def __init__(self, application_id: str, config: Mapping[str, Any] | None = None,
                 **more: Any) -> None:
        raise NotImplementedError  # streams-runtime

    @property
    def topology(self) -> Topology:
        raise NotImplementedError  # streams-runtime

    def stream(self, topic: str, **kw: Any):
        return self.topology.stream(topic, **kw)

    def table(self, topic: str, store: str | None = None, **kw: Any):
        return self.topology.table(topic, store, **kw)

    def run(self) -> None:
        """Run until ``close()`` (from another thread or a signal handler)."""
        raise NotImplementedError  # streams-runtime

    def close(self, timeout: float | None = None) -> None:
        raise NotImplementedError  # streams-runtime

    def store(self, name: str) -> Any:
        """Interactive query: a read-only view over this instance's tasks' ``name`` stores."""
        raise NotImplementedError  # streams-runtime

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
