"""At start, before joining the group: check the source topics, work out the partition count
of every internal topic, check co-partitioning and create what is missing
(docs/streams.md "Running").

* a sub-topology's tasks read partition p of each of its sources: they must have equal
  partition counts (else :class:`CopartitionError` names them);
* a repartition topic gets the largest partition count of its writer's (upstream
  sub-topology's) inputs, unless the topology fixed one, or it is in a co-partition group
  (a join side): then the group's count, as Kafka's CopartitionedTopicsEnforcer;
* a changelog gets its store's sub-topology's partition count (task p writes partition p)
  and the topology's configs (compacted);
* an internal topic that exists with another partition count is an error, not resized.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rillet.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError
from rillet.records import NewTopic

from .api import CompiledTopology, topic_of
from .errors import CopartitionError, MissingSourceTopicError, StreamsError

log = logging.getLogger("rillet.streams.topics")


def _counts(admin: Any, names: list[str]) -> dict[str, int]:
    out = {}
    for name in names:
        try:
            out[name] = len(admin.describe_topics([name])[name].partitions)
        except UnknownTopicOrPartitionError:
            pass
    return out


def plan_internal_topics(topology: CompiledTopology, application_id: str,
                         existing: Mapping[str, int]) -> dict[str, tuple[int, dict]]:
    """``{real name: (partitions, configs)}`` of every internal topic; raises
    MissingSourceTopicError / CopartitionError. ``existing``: partition counts of the
    external source topics (and of internal topics that already exist)."""
    prefix = f"{application_id}-"
    specs = {prefix + s.name: s for s in topology.internal_topics}
    missing = sorted(t for t in topology.source_topics() if t not in existing)
    if missing:
        raise MissingSourceTopicError(
            f"source topic{'s' if len(missing) > 1 else ''} {', '.join(missing)} of "
            f"application {application_id!r} do{'' if len(missing) > 1 else 'es'} not exist: "
            "create them first")
    counts: dict[str, int] = {t: existing[t] for t in topology.source_topics()}
    for real, spec in specs.items():
        if spec.partitions is not None:
            counts[real] = spec.partitions
    groups = [frozenset(prefix + t if prefix + t in specs else t for t in g)
              for g in getattr(topology, "copartition_groups", ())]
    by_sub = {st.id: st for st in topology.subtopologies}

    def sub_count(sub_id: int) -> int | None:
        names = [topic_of(s, application_id) for s in by_sub[sub_id].sources]
        known = [counts[n] for n in names if n in counts]
        return max(known) if known and len(known) == len(names) else None

    # repartition counts flow downstream: iterate until nothing changes
    for _ in range(len(specs) + 1):
        changed = False
        for real, spec in specs.items():
            if spec.kind != "repartition" or real in counts:
                continue
            group_counts = [counts[t] for g in groups if real in g for t in g if t in counts
                            and specs.get(t) is None]
            n = max(group_counts) if group_counts else (
                sub_count(spec.upstream_subtopology)
                if spec.upstream_subtopology is not None else None)
            if n is not None:
                counts[real] = n
                changed = True
        if not changed:
            break
    unresolved = [r for r, s in specs.items() if s.kind == "repartition" and r not in counts]
    if unresolved:
        raise StreamsError(f"cannot work out the partition count of {', '.join(unresolved)}")
    # a sub-topology's sources, and each co-partition group, must agree
    for st in topology.subtopologies:
        names = [topic_of(s, application_id) for s in st.sources]
        _same(names, counts, f"the inputs of sub-topology {st.id}")
    for g in groups:
        _same(sorted(g), counts, "the two sides of a join")
    out: dict[str, tuple[int, dict]] = {}
    for real, spec in specs.items():
        if spec.kind == "repartition":
            out[real] = (counts[real], dict(spec.configs))
            continue
        store = spec.name[:-len("-changelog")]
        sub = next((st for st in topology.subtopologies if store in st.stores), None)
        n = spec.partitions or (sub_count(sub.id) if sub is not None else None)
        if n is None:
            raise StreamsError(f"no sub-topology uses store {store!r} of changelog {real}")
        configs = {"cleanup.policy": "compact", **dict(spec.configs)}
        out[real] = (n, configs)
    return out


def _same(names: list[str], counts: Mapping[str, int], what: str) -> None:
    found = {n: counts[n] for n in names if n in counts}
    if len(set(found.values())) > 1:
        detail = ", ".join(f"{n} ({c} partitions)" for n, c in sorted(found.items()))
        raise CopartitionError(f"{what} must be co-partitioned (the same number of "
                               f"partitions), but: {detail}")


def ensure_internal_topics(admin: Any, topology: CompiledTopology, application_id: str,
                           replication_factor: int, dlq_topic: str | None = None
                           ) -> dict[str, int]:
    """Check and create; returns the partition count of every topic the app reads or
    writes internally. ``dlq_topic``: the dead-letter topic, created (one partition) if
    missing, so that the first bad record does not wait for a topic nobody made."""
    prefix = f"{application_id}-"
    internal = [prefix + s.name for s in topology.internal_topics]
    existing = _counts(admin, sorted(topology.source_topics()) + internal
                       + ([dlq_topic] if dlq_topic else []))
    plan = plan_internal_topics(topology, application_id, existing)
    if dlq_topic and dlq_topic not in existing:
        plan[dlq_topic] = (1, {})
    for name, (n, _) in plan.items():
        if name in existing and existing[name] != n:
            raise CopartitionError(
                f"internal topic {name} exists with {existing[name]} partitions but the "
                f"topology needs {n}: delete it (application reset) or fix the inputs")
    todo = [NewTopic(name, n, replication_factor, configs)
            for name, (n, configs) in sorted(plan.items()) if name not in existing]
    if todo:
        results = admin.create_topics(todo, raise_errors=False)
        for name, err in results.items():
            if err is not None and not isinstance(err, TopicAlreadyExistsError):
                raise StreamsError(f"creating internal topic {name}: {err}") from err
        log.info("created internal topics %s", ", ".join(t.name for t in todo))
    return {**existing, **{name: n for name, (n, _) in plan.items()}}


def ensure_instances_topic(admin: Any, name: str, replication_factor: int) -> None:
    """The instances topic (instances.py): one compacted partition, created if missing."""
    if name in _counts(admin, [name]):
        return
    results = admin.create_topics([NewTopic(name, 1, replication_factor,
                                            {"cleanup.policy": "compact"})],
                                  raise_errors=False)
    err = results.get(name)
    if err is not None and not isinstance(err, TopicAlreadyExistsError):
        raise StreamsError(f"creating internal topic {name}: {err}") from err
    log.info("created internal topic %s", name)


__all__ = ["ensure_instances_topic", "ensure_internal_topics", "plan_internal_topics"]
