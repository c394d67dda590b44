"""The graph the DSL builds and its compilation (docs/streams.md "Topology"): processor
nodes, sources, sinks and stores, split into sub-topologies at repartition topics, with the
internal topics the application needs.

SKELETON (lead): implemented by the DSL helper. ``Topology`` is the
:class:`~rillet.streams.api.TopologyBuilder` that dsl.py, windowed.py and joins.py add nodes
through; ``compile()`` returns the :class:`~rillet.streams.api.CompiledTopology` the runtime
(app.py, task.py) and the test driver (driver.py) run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .api import CompiledTopology, Processor, Serde, StoreSpec
from .dsl import Stream, Table


class Topology:
    """``topology.stream("topic")`` / ``topology.table("topic")`` start the DSL;
    ``describe()`` prints the sub-topologies as Kafka's ``Topology#describe``."""

    def __init__(self, default_key_serde: Serde | None = None,
                 default_value_serde: Serde | None = None) -> None:
        raise NotImplementedError  # streams-dsl

    def stream(self, topic: str, *, key_serde: Serde | None = None,
               value_serde: Serde | None = None,
               timestamp_extractor: Callable[[Any, Any, int], int] | None = None) -> Stream:
        raise NotImplementedError  # streams-dsl

    def table(self, topic: str, store: str | None = None, *, key_serde: Serde | None = None,
              value_serde: Serde | None = None) -> Table:
        """A table from a (compacted) topic; materialized in ``store`` (a name is made up
        if None). Its source topic doubles as its changelog (no extra topic), as Kafka's
        ``topology.optimization`` does."""
        raise NotImplementedError  # streams-dsl

    # TopologyBuilder (api.py) ---------------------------------------------------------
    def new_name(self, prefix: str) -> str:
        raise NotImplementedError  # streams-dsl

    def add_source(self, topic: str, key_serde: Serde, value_serde: Serde,
                   name: str | None = None, *, internal: bool = False,
                   timestamp_extractor: Callable[[Any, Any, int], int] | None = None) -> str:
        raise NotImplementedError  # streams-dsl

    def add_processor(self, name: str, factory: Callable[[], Processor],
                      parents: tuple[str, ...], stores: tuple[str, ...] = ()) -> str:
        raise NotImplementedError  # streams-dsl

    def add_sink(self, topic: str, key_serde: Serde, value_serde: Serde,
                 parents: tuple[str, ...], name: str | None = None, *,
                 internal: bool = False,
                 partitioner: Callable[[Any, Any, int], int] | None = None) -> str:
        raise NotImplementedError  # streams-dsl

    def add_store(self, spec: StoreSpec) -> None:
        raise NotImplementedError  # streams-dsl

    def connect_store(self, node: str, store: str) -> None:
        raise NotImplementedError  # streams-dsl

    def copartition(self, *source_nodes: str) -> None:
        raise NotImplementedError  # streams-dsl

    def compile(self) -> CompiledTopology:
        raise NotImplementedError  # streams-dsl

    def describe(self) -> str:
        raise NotImplementedError  # streams-dsl
