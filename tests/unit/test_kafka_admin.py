"""The KAFKA listener's admin handlers (actors/kafka_admin.py, kafka_configs.py) over the
controller's real decisions (controller_wire.decide on a metadata image): kio requests in,
kio responses out, each encoded as the listener would send it."""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema
from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from rillet.actors import controller as C
from rillet.actors import kafka_dispatch as D
from rillet.actors import kafka_wire as W
from rillet.actors.configs import validate_broker_configs
from rillet.actors.controller_wire import decide
from rillet.coordinator import metadata as md

D.load_handlers()
TIMEOUT = i32Timedelta.parse(timedelta(seconds=30))


class FakeController:
    """The active controller: decides with the shipped handlers and applies the records."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.seen: list[Any] = []

    def tell(self, message: C.Admin) -> None:
        self.seen.append(message.request)
        result = decide(message.request, self.ctx.image, self.ctx.broker_configs, False)
        self.ctx.image = md.replay(result.records, self.ctx.image)
        message.reply(result.response)


def _image(brokers=(1, 2)) -> md.MetadataImage:
    image = md.MetadataImage()
    for b in brokers:
        image = md.replay([md.RegisterBroker(broker_id=b, host="h", port=9000 + b,
                                             kafka_host="k", kafka_port=9100 + b),
                           md.UnfenceBroker(broker_id=b)], image)
    return image


@pytest.fixture
def ctx():
    ctx = SimpleNamespace(
        broker_id=1, incarnation="", cluster_id="c1", controller_id=1,
        broker_configs=validate_broker_configs({"log.retention.ms": "1000"}),
        image=_image(), ticker=SimpleNamespace(call_later=lambda delay, fn: fn()))
    ctx.controller = FakeController(ctx)
    return ctx


def req(key: int, version: int) -> tuple[type, Any]:
    """kio's request class for (key, version) and the module of its nested types."""
    cls = load_request_schema(key, version)
    return cls, sys.modules[cls.__module__]


def call(ctx, key: int, version: int, body: Any) -> Any:
    """Run the handler; the response it gave (returned or via respond), encoded once."""
    got: list[Any] = []
    c = D.Call(W.Request(key, version, 1, "test", body, 0), ctx, D.KafkaEndpoint("k", 9101),
               got.append)
    out = D.HANDLERS[key].handler(c)
    if out is not None:
        got.append(out)
    assert len(got) == 1
    W.encode_response(1, got[0])  # the listener could send it
    return got[0]


def create(ctx, version: int, *topics: tuple, validate_only: bool = False):
    cls, mod = req(19, version)
    body = cls(topics=tuple(
        mod.CreatableTopic(name=name, num_partitions=n, replication_factor=rf,
                           assignments=tuple(mod.CreatableReplicaAssignment(
                               partition_index=i, broker_ids=b) for i, b in assign),
                           configs=tuple(mod.CreatableTopicConfig(name=k, value=v)
                                         for k, v in configs.items()))
        for name, n, rf, configs, assign in topics), validate_only=validate_only)
    return {t.name: t for t in call(ctx, 19, version, body).topics}


@pytest.mark.parametrize("version", [2, 4, 7])
def test_create_topics_maps_errors_and_refuses_what_rillet_cannot_take(ctx, version) -> None:
    out = create(ctx, version, ("a", 2, 2, {"retention.ms": "5"}, ()),
                 ("b", 1, 1, {"retention.msx": "5"}, ()), ("c", 1, 3, {}, ()),
                 ("d", 1, 1, {}, ((0, (1,)),)), ("e", 1, 1, {}, ()), ("e", 1, 1, {}, ()))
    assert out["a"].error_code == ErrorCode.none and "a" in ctx.image.topics
    assert out["b"].error_code == ErrorCode.invalid_config
    assert "did you mean 'retention.ms'" in out["b"].error_message
    assert out["c"].error_code == ErrorCode.invalid_replication_factor
    assert out["d"].error_code == ErrorCode.invalid_request  # manual assignment
    assert out["e"].error_code == ErrorCode.invalid_request  # named twice
    assert set(ctx.image.topics) == {"a"}
    assert create(ctx, version, ("a", 1, 1, {}, ()))["a"].error_code == \
        ErrorCode.topic_already_exists
    if version >= 5:
        configs = {c.name: c for c in out["a"].configs}
        assert configs["retention.ms"].value == "5" and configs["retention.ms"].config_source == 1
        assert out["a"].topic_id == uuid.UUID(ctx.image.topics["a"].topic_id)


def test_create_topics_validate_only_keeps_nothing(ctx) -> None:
    out = create(ctx, 7, ("v", 3, 1, {}, ()), validate_only=True)
    assert out["v"].error_code == ErrorCode.none and out["v"].num_partitions == 3
    assert "v" not in ctx.image.topics


def test_delete_topics_by_name_and_by_id(ctx) -> None:
    create(ctx, 7, ("x", 1, 1, {}, ()), ("y", 1, 1, {}, ()))
    cls, mod = req(20, 6)
    xid, yid = (uuid.UUID(ctx.image.topics[n].topic_id) for n in "xy")
    body = cls(topics=(mod.DeleteTopicState(name="x", topic_id=uuid.UUID(int=0)),
                       mod.DeleteTopicState(name=None, topic_id=yid),
                       mod.DeleteTopicState(name=None, topic_id=uuid.uuid4()),
                       mod.DeleteTopicState(name="nope", topic_id=uuid.UUID(int=0))),
               timeout=TIMEOUT)
    out = call(ctx, 20, 6, body).responses
    codes = {(r.name, r.error_code) for r in out}
    ids = {r.name: r.topic_id for r in out}
    assert ids["x"] == xid and ids["y"] == yid  # each answer names the topic's id
    assert ("x", ErrorCode.none) in codes and ("y", ErrorCode.none) in codes
    assert (None, ErrorCode.unknown_topic_id) in codes
    assert ("nope", ErrorCode.unknown_topic_or_partition) in codes
    assert not ctx.image.topics


def test_create_partitions_grows_and_refuses_shrinking(ctx) -> None:
    create(ctx, 7, ("g", 1, 1, {}, ()))
    cls, mod = req(37, 3)

    def grow(count, assignments=None):
        body = cls(topics=(mod.CreatePartitionsTopic(name="g", count=count,
                                                      assignments=assignments),),
                   timeout=TIMEOUT, validate_only=False)
        return call(ctx, 37, 3, body).results[0].error_code

    assert grow(3) == ErrorCode.none and len(ctx.image.topics["g"].partitions) == 3
    assert grow(2) == ErrorCode.invalid_partitions
    assert grow(4, (mod.CreatePartitionsAssignment(broker_ids=(1,)),)) == \
        ErrorCode.invalid_request


def _describe(ctx, resources, synonyms=True, version=4):
    cls, mod = req(32, version)
    body = cls(resources=tuple(mod.DescribeConfigsResource(
        resource_type=t, resource_name=n, configuration_keys=keys) for t, n, keys in resources),
        include_synonyms=synonyms)
    return call(ctx, 32, version, body).results


def test_describe_configs_sources_synonyms_and_errors(ctx) -> None:
    create(ctx, 7, ("t", 1, 1, {"segment.ms": "60000"}, ()))
    topic, broker, other, missing, user = _describe(ctx, [
        (2, "t", None), (4, "1", ("log.retention.ms", "num.partitions")), (4, "2", None),
        (2, "missing", None), (64, "u", None)])
    entries = {c.name: c for c in topic.configs}
    assert entries["segment.ms"].config_source == 1  # DYNAMIC_TOPIC_CONFIG
    assert [s.source for s in entries["segment.ms"].synonyms] == [1, 5]
    # retention.ms comes from the broker's log.retention.ms (STATIC_BROKER_CONFIG)
    assert entries["retention.ms"].value == "1000" and entries["retention.ms"].config_source == 4
    assert [(s.name, s.value, s.source) for s in entries["retention.ms"].synonyms] == [
        ("log.retention.ms", "1000", 4), ("log.retention.ms", "604800000", 5)]
    assert entries["cleanup.policy"].config_source == 5 and entries["cleanup.policy"].config_type == 7
    bentries = {c.name: c for c in broker.configs}
    assert set(bentries) == {"log.retention.ms", "num.partitions"}
    assert bentries["log.retention.ms"].config_source == 4 and bentries["log.retention.ms"].read_only
    assert bentries["num.partitions"].config_source == 5
    assert other.error_code == ErrorCode.invalid_request  # another broker's: ask it
    assert missing.error_code == ErrorCode.unknown_topic_or_partition
    assert user.error_code == ErrorCode.invalid_request  # rillet's USER resource: not here
    assert all(not c.synonyms for c in _describe(ctx, [(2, "t", None)], synonyms=False)[0].configs)


def _incremental(ctx, resource_type, name, *changes, validate_only=False):
    cls, mod = req(44, 1)
    body = cls(resources=(mod.AlterConfigsResource(
        resource_type=resource_type, resource_name=name,
        configs=tuple(mod.AlterableConfig(name=k, config_operation=op, value=v)
                      for k, op, v in changes)),), validate_only=validate_only)
    (r,) = call(ctx, 44, 1, body).responses
    return r


def test_incremental_alter_configs(ctx) -> None:
    create(ctx, 7, ("t", 1, 1, {"retention.ms": "5"}, ()))
    ok = _incremental(ctx, 2, "t", ("retention.ms", 1, None), ("cleanup.policy", 2, "compact"),
                      ("segment.ms", 0, "60000"))
    assert ok.error_code == ErrorCode.none
    assert dict(ctx.image.topics["t"].configs) == {"cleanup.policy": "compact,delete",
                                                   "segment.ms": "60000"}
    assert _incremental(ctx, 2, "t", ("cleanup.policy", 3, "delete")).error_code == ErrorCode.none
    assert ctx.image.topics["t"].configs["cleanup.policy"] == "compact"
    for refused, code in [
        ((("segment.ms", 2, "1"),), ErrorCode.invalid_config),  # APPEND on a non-list key
        ((("segment.mss", 0, "1"),), ErrorCode.invalid_config),  # unknown key: hint
        ((("segment.ms", 0, "1"), ("segment.ms", 0, "2")), ErrorCode.invalid_request),
        ((("segment.ms", 7, "1"),), ErrorCode.invalid_request),  # unknown operation
    ]:
        assert _incremental(ctx, 2, "t", *refused).error_code == code, refused
    assert "did you mean 'segment.ms'" in _incremental(
        ctx, 2, "t", ("segment.mss", 0, "1")).error_message
    assert _incremental(ctx, 2, "t", ("segment.ms", 0, "1"), validate_only=True).error_code == \
        ErrorCode.none and ctx.image.topics["t"].configs["segment.ms"] == "60000"
    # rillet's USER resource (a CURVE key) is never altered through this door
    sent = len(ctx.controller.seen)
    assert _incremental(ctx, 64, "mallory", ("public.key", 0, "x")).error_code == \
        ErrorCode.invalid_request
    assert len(ctx.controller.seen) == sent and not ctx.image.users


def test_legacy_alter_configs_replaces_the_overrides(ctx) -> None:
    create(ctx, 7, ("t", 1, 1, {"retention.ms": "5", "segment.ms": "60000"}, ()))
    cls, mod = req(33, 2)
    body = cls(resources=(mod.AlterConfigsResource(
        resource_type=2, resource_name="t",
        configs=(mod.AlterableConfig(name="segment.ms", value="70000"),)),), validate_only=False)
    assert call(ctx, 33, 2, body).responses[0].error_code == ErrorCode.none
    assert dict(ctx.image.topics["t"].configs) == {"segment.ms": "70000"}


def test_refused_on_a_curve_cluster(ctx) -> None:
    ctx.broker_configs = {**ctx.broker_configs, "client.curve.keyfile": "/k"}
    out = create(ctx, 7, ("a", 1, 1, {}, ()))
    assert out["a"].error_code == ErrorCode.cluster_authorization_failed
    assert not ctx.controller.seen and not ctx.image.topics


def test_describe_cluster_lists_kafka_addresses(ctx) -> None:
    cls, _ = req(60, 2)
    body = cls(include_cluster_authorized_operations=False, include_fenced_brokers=False)
    out = call(ctx, 60, 2, body)
    assert out.controller_id == 1 and out.cluster_id == "c1"
    assert [(b.broker_id, b.host, b.port) for b in out.brokers] == [(1, "k", 9101),
                                                                  (2, "k", 9102)]


def test_list_partition_reassignments_shows_the_ongoing_ones(ctx) -> None:
    create(ctx, 7, ("r", 2, 1, {}, ()))
    topic = ctx.image.topics["r"]
    moving = replace(topic.partitions[1], replicas=(1, 2), adding_replicas=(2,),
                     removing_replicas=(1,))
    ctx.image = replace(ctx.image, topics={"r": replace(
        topic, partitions={**topic.partitions, 1: moving})})
    cls, mod = req(46, 0)
    for topics in (None, (mod.ListPartitionReassignmentsTopics(name="r",
                                                              partition_indexes=(0, 1)),)):
        out = call(ctx, 46, 0, cls(topics=topics))
        assert [(t.name, [(p.partition_index, p.replicas, p.adding_replicas,
                           p.removing_replicas) for p in t.partitions]) for t in out.topics] == \
            [("r", [(1, (1, 2), (2,), (1,))])]
    quiet = call(ctx, 46, 0, cls(topics=(mod.ListPartitionReassignmentsTopics(
        name="r", partition_indexes=(0,)),)))
    assert quiet.topics == ()


def test_elect_leaders_preferred_and_unclean_refused(ctx) -> None:
    create(ctx, 7, ("e", 1, 2, {}, ()))
    cls, mod = req(43, 2)
    wanted = (mod.TopicPartitions(topic="e", partitions=(0,)),)
    out = call(ctx, 43, 2, cls(election_type=0, topic_partitions=wanted))
    (result,) = out.replica_election_results
    assert result.partition_result[0].error_code == ErrorCode.election_not_needed
    unclean = call(ctx, 43, 2, cls(election_type=1, topic_partitions=wanted))
    assert unclean.replica_election_results[0].partition_result[0].error_code == \
        ErrorCode.invalid_request


def _every_version_requests():
    """(key, version, request) for every version served, from each version's own classes."""
    from rillet.actors.kafka_metadata import build

    def make(key: int, version: int, mod: Any, cls: type) -> Any:
        match key:
            case 19:
                return build(cls, topics=(build(mod.CreatableTopic, name=f"v{version}",
                                                num_partitions=1, replication_factor=1,
                                                assignments=(), configs=()),),
                             timeout=TIMEOUT, validate_only=False)
            case 20:
                if version >= 6:
                    return cls(topics=(mod.DeleteTopicState(name="gone", topic_id=uuid.UUID(
                        int=0)),), timeout=TIMEOUT)
                return cls(topic_names=("gone",), timeout=TIMEOUT)
            case 37:
                return cls(topics=(mod.CreatePartitionsTopic(name="base", count=2,
                                                             assignments=None),),
                           timeout=TIMEOUT, validate_only=True)
            case 32:
                return build(cls, resources=(mod.DescribeConfigsResource(
                    resource_type=2, resource_name="base", configuration_keys=None),),
                    include_synonyms=True, include_documentation=False)
            case 33:
                return cls(resources=(mod.AlterConfigsResource(
                    resource_type=2, resource_name="base",
                    configs=(mod.AlterableConfig(name="segment.ms", value="60000"),)),),
                    validate_only=True)
            case 44:
                return cls(resources=(mod.AlterConfigsResource(
                    resource_type=2, resource_name="base", configs=(mod.AlterableConfig(
                        name="segment.ms", config_operation=0, value="60000"),)),),
                    validate_only=True)
            case 60:
                return build(cls, include_cluster_authorized_operations=False,
                             endpoint_type=1, include_fenced_brokers=True)
            case 43:
                return build(cls, election_type=0, timeout=TIMEOUT, topic_partitions=(
                    mod.TopicPartitions(topic="base", partitions=(0,)),))
            case 45:
                return cls(timeout=TIMEOUT, topics=(mod.ReassignableTopic(
                    name="base", partitions=(mod.ReassignablePartition(
                        partition_index=0, replicas=None),)),))
            case 46:
                return cls(timeout=TIMEOUT, topics=None)
        raise AssertionError(key)

    for key in (19, 20, 37, 32, 33, 44, 60, 43, 45, 46):
        api = D.HANDLERS[key]
        for version in range(api.min_version, api.max_version + 1):
            cls, mod = req(key, version)
            yield key, version, make(key, version, mod, cls)


@pytest.mark.parametrize("key,version,body", list(_every_version_requests()),
                         ids=lambda v: str(v) if isinstance(v, int) else "")
def test_every_served_version_answers_and_encodes(ctx, key, version, body) -> None:
    create(ctx, 7, ("base", 1, 1, {}, ()))
    out = call(ctx, key, version, body)
    assert type(out).__api_key__ == key and type(out).__version__ == version


def test_describe_cluster_of_controllers_is_refused(ctx) -> None:
    cls, _ = req(60, 1)
    out = call(ctx, 60, 1, cls(include_cluster_authorized_operations=False, endpoint_type=2))
    assert out.error_code == ErrorCode.unsupported_endpoint_type and out.brokers == ()


@settings(max_examples=50, deadline=None)
@given(
    name=st.text(max_size=300),
    partitions=st.integers(-(2**31), 2**31 - 1),
    rf=st.integers(-(2**15), 2**15 - 1),
    key=st.text(max_size=40),
    value=st.text(max_size=40),
    count=st.integers(-(2**31), 2**31 - 1),
    resource_type=st.integers(-128, 127),
)
def test_any_admin_request_gets_an_answer(name, partitions, rf, key, value, count,
                                          resource_type) -> None:
    """Whatever the numbers and names, each API answers per item and the answer encodes."""
    ctx = SimpleNamespace(broker_id=1, incarnation="", cluster_id="c1", controller_id=1,
                          broker_configs=validate_broker_configs({}), image=_image(),
                          ticker=SimpleNamespace(call_later=lambda delay, fn: fn()))
    ctx.controller = FakeController(ctx)
    made = create(ctx, 7, (name, partitions, rf, {key: value}, ()))
    assert set(made) == {name}
    cls, mod = req(37, 3)
    grown = call(ctx, 37, 3, cls(topics=(mod.CreatePartitionsTopic(
        name=name, count=count, assignments=None),), timeout=TIMEOUT, validate_only=False))
    assert [r.name for r in grown.results] == [name]
    described = _describe(ctx, [(resource_type, name, None)])
    assert len(described) == 1
    altered = _incremental(ctx, resource_type, name, (key, 0, value))
    assert altered.resource_name == name
