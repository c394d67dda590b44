"""Interactive queries across instances (docs/streams.md "Interactive queries across
instances"): which instance holds a key of a store, from the instances topic's view
(instances.py). ``App.query_metadata_for_key`` / ``all_metadata_for_store`` /
``all_metadata`` call these; any thread may.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rillet._partitioner import partition_for_key
from rillet.records import TopicPartition

from .api import CompiledTopology, Subtopology, TaskId, topic_of
from .errors import StreamsError
from .instances import HostInfo, InstanceInfo, KeyQueryMetadata, StreamsMetadata

if TYPE_CHECKING:
    from .app import App


def _compiled(app: App) -> CompiledTopology:
    compiled = app._compiled
    if compiled is None:
        raise StreamsError("metadata is known once the app runs (start() or run())")
    return compiled


def _heard(app: App) -> dict[str, tuple[InstanceInfo, float]]:
    """Every live instance's entry and when it was last heard of; this instance's from
    what it holds right now."""
    runtime = app._runtime
    standbys = None if runtime is None else runtime.standbys
    now = time.monotonic()
    heard = {} if standbys is None else app._directory.heard(now)
    server = app.config.application_server
    heard[app.instance_id] = (InstanceInfo(
        None if server is None else HostInfo.parse(server), frozenset(list(app.tasks)),
        frozenset() if standbys is None else frozenset(list(standbys.tasks))), now)
    return heard


def _live(app: App) -> dict[str, InstanceInfo]:
    return {i: info for i, (info, _) in _heard(app).items()}


def _subtopology_of(compiled: CompiledTopology, store: str) -> Subtopology:
    for st in compiled.subtopologies:
        if store in st.stores:
            return st
    known = sorted({n for st in compiled.subtopologies for n in st.stores})
    raise KeyError(f"no store {store!r} in the topology (stores: "
                   f"{', '.join(known) or 'none'})")


def key_metadata(app: App, store: str, key: Any, key_serializer: Any = None
                 ) -> KeyQueryMetadata:
    compiled = _compiled(app)
    st = _subtopology_of(compiled, store)
    if key is None:
        raise TypeError("a store key cannot be None")
    serde = key_serializer if key_serializer is not None else st.stores[store].key_serde
    source = topic_of(st.sources[0], app.application_id)
    n = app._partition_counts.get(source)
    if not n:
        raise StreamsError(f"the partition count of {source} is not known yet")
    partition = partition_for_key(serde.serialize(source, key), n)
    task = TaskId(st.id, partition)
    heard = _heard(app)
    # the claimant heard of last (this instance first: what it holds is not hearsay)
    owners = sorted(((at, i == app.instance_id, i) for i, (info, at) in heard.items()
                     if task in info.active), reverse=True)
    mine = [o for o in owners if o[1]]
    owner = mine[0] if mine else owners[0] if owners else None
    active = None if owner is None else heard[owner[2]][0].server
    standbys = frozenset(info.server for info, _ in heard.values()
                         if task in info.standby and info.server is not None)
    return KeyQueryMetadata(active, standbys, partition)


def all_metadata(app: App) -> list[StreamsMetadata]:
    compiled = _compiled(app)
    by_id = {st.id: st for st in compiled.subtopologies}
    app_id = app.application_id

    def stores(tasks: frozenset[TaskId]) -> frozenset[str]:
        return frozenset(n for t in tasks if t.subtopology in by_id
                         for n in by_id[t.subtopology].stores)

    def partitions(tasks: frozenset[TaskId]) -> frozenset[TopicPartition]:
        return frozenset(TopicPartition(topic_of(s, app_id), t.partition) for t in tasks
                         if t.subtopology in by_id for s in by_id[t.subtopology].sources)

    return [StreamsMetadata(instance, info.server, stores(info.active),
                            partitions(info.active), stores(info.standby),
                            partitions(info.standby), info.active, info.standby)
            for instance, info in sorted(_live(app).items())]


__all__ = ["all_metadata", "key_metadata"]
