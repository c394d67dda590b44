"""Topic and cluster admin on the KAFKA listener (docs/kafka-compat.md): CreateTopics,
DeleteTopics, CreatePartitions, ElectLeaders, AlterPartitionReassignments,
ListPartitionReassignments and DescribeCluster. The config APIs are kafka_configs.py's.

Nothing is decided here. A mutating request becomes the native request the session sends
(transport/protocol.py) and goes to this broker's Controller actor as ``Admin`` - the
path of actors/session.py: the active controller decides (coordinator/control/), another
broker forwards it to the active one - and the native answer is translated back to kio's
response for the client's version. What Kafka refuses before its controller sees a request
(duplicate names, manual replica assignments rillet cannot take) is refused here.

A mutation is answered once this broker's own metadata image shows it (bounded by the
request's timeout, at most ``SETTLE_MAX_S``), so a client that creates a topic and then asks
this broker for its metadata or configs sees it. Handlers never block: the controller's
reply and the ticker carry the rest.

With the authorizer on, the native request is checked with the connection's principal
(actors/kafka_auth.py) before it goes to the controller. A PLAINTEXT KAFKA listener on a
broker that requires CURVE clients (``client.curve.keyfile``) refuses the mutating APIs with
CLUSTER_AUTHORIZATION_FAILED, so it cannot bypass the native listener's authentication; a
SASL_PLAINTEXT one (actors/kafka_sasl.py) serves them to authenticated principals.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode
from kio.static.primitive import i32Timedelta
from loguru import logger
from rillet.coordinator.metadata import MetadataImage
from rillet.transport import protocol as P

from . import controller as C
from . import kafka_quotas
from .kafka_auth import describe_cluster_denied, gated
from .kafka_dispatch import Call, api
from .kafka_metadata import build, topic_uuid
from .kafka_schemas import load_response_schema

SETTLE_MAX_S = 10.0  # longest wait for this broker's image to show a committed change
NO_THROTTLE = i32Timedelta.parse(timedelta(0))
NULL_UUID = "00000000-0000-0000-0000-000000000000"


# ------------------------------------------------------------------------------ helpers


def kcode(code: int) -> ErrorCode:
    """A native error code as kio's ErrorCode (the numbers are Kafka's); unknown: -1."""
    try:
        return ErrorCode(int(code))
    except ValueError:
        return ErrorCode.unknown_server_error


def response(call: Call, key: int) -> tuple[type, Any]:
    """kio's response class for this call's version and the module of its nested types."""
    cls = load_response_schema(key, call.request.api_version)
    return cls, sys.modules[cls.__module__]


def timeout_ms(body: Any, default: int = 30000) -> int:
    t = getattr(body, "timeout", None)
    return int(t.total_seconds() * 1000) if t is not None else default


def to_controller(
    call: Call,
    native: Any,
    answer: Callable[[Any], Any],
    fail: Callable[[int, str], Any],
    settled: Callable[[MetadataImage, Any], bool] | None = None,
    wait_ms: int = 30000,
) -> None:
    """Send ``native`` to the Controller as the session does; ``call.respond(answer(native
    response))`` once ``settled(image, native response)`` holds here (or the wait ends).
    ``fail(code, message)`` builds the whole-request refusal (no controller yet, an
    ErrorResponse, a translation that raised)."""
    ctx = call.broker
    session = call.session
    if ctx.broker_configs.get("client.curve.keyfile") and not (session is not None and session.sasl):
        call.respond(fail(P.ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                          "this cluster admits only authenticated clients; this KAFKA listener "
                          "is PLAINTEXT: set listener.security.protocol.map=KAFKA:SASL_PLAINTEXT "
                          "(docs/security.md) or use the native client"))
        return
    native, respond = gated(call, native, lambda r: reply(r))  # ACLs (actors/kafka_auth.py)
    if native is None:
        return
    if ctx.controller is None:
        call.respond(fail(P.ErrorCode.NOT_CONTROLLER, "the broker is starting"))
        return

    def finish(native_response: Any) -> None:
        try:
            if isinstance(native_response, P.ErrorResponse):
                out = fail(native_response.error_code, native_response.error_message or "")
            else:
                out = answer(native_response)
        except Exception as e:  # noqa: BLE001 - never into the controller's thread
            logger.exception("kafka admin: translating {} failed", type(native).__name__)
            out = fail(P.ErrorCode.UNKNOWN_SERVER_ERROR, str(e))
        call.respond(out)

    def reply(native_response: Any) -> None:  # the controller's (or forwarder's) thread
        if settled is None or isinstance(native_response, P.ErrorResponse):
            return finish(native_response)
        deadline = time.monotonic() + min(max(wait_ms, 0) / 1000, SETTLE_MAX_S)

        def check() -> None:
            try:
                done = settled(ctx.image, native_response)
            except Exception:  # noqa: BLE001 - a predicate bug must not hang the client
                logger.exception("kafka admin: settle check failed")
                done = True
            if done or time.monotonic() >= deadline:
                finish(native_response)
            else:
                ctx.ticker.call_later(0.02, check)

        check()

    ctx.controller.tell(C.Admin(native, respond, forwardable=True))


def named_twice(names: list[str]) -> dict[str, tuple[int, str]]:
    """Kafka's broker refuses, before its controller sees them, the topics a request names
    more than once: name -> (INVALID_REQUEST, why)."""
    return {name: (P.ErrorCode.INVALID_REQUEST,
                   f"topic {name!r} is named more than once in the request")
            for name in {n for n in names if names.count(n) > 1}}


# --------------------------------------------------------------------------- CreateTopics


@api(19, 2, 7)
def create_topics(call: Call):
    body, version = call.request.body, call.request.api_version
    cls, mod = response(call, 19)
    names = [t.name for t in body.topics]
    refused = named_twice(names)
    throttle = NO_THROTTLE  # controller_mutation_rate (actors/mutation_quota.py)
    native = []
    for t in body.topics:
        if t.name in refused:
            continue
        if t.assignments:
            refused[t.name] = (P.ErrorCode.INVALID_REQUEST,
                               "manual replica assignment is not supported: give num_partitions "
                               "and replication_factor, then move replicas with "
                               "AlterPartitionReassignments")
            continue
        nulls = [c.name for c in t.configs if c.value is None]
        keys = [c.name for c in t.configs]
        if nulls or len(set(keys)) != len(keys):
            refused[t.name] = (P.ErrorCode.INVALID_CONFIG, (
                f"null value not supported for topic config {nulls[0]!r}" if nulls
                else f"a config is given twice: {sorted({k for k in keys if keys.count(k) > 1})}"))
            continue
        native.append(P.CreatableTopic(name=t.name, num_partitions=int(t.num_partitions),
                                       replication_factor=int(t.replication_factor),
                                       configs={c.name: c.value for c in t.configs}))

    def result(name: str, code: int, message: str | None):
        return build(mod.CreatableTopicResult, name=name, topic_id=None, error_code=kcode(code),
                     error_message=message, configs=None)

    def answer(resp: P.CreateTopicsResponse | None):
        out = [result(n, *refused[n]) for n in dict.fromkeys(names) if n in refused]
        for r in resp.topics if resp else ():
            if r.error_code:
                out.append(result(r.name, r.error_code, r.error_message))
                continue
            configs = None
            if version >= 5:  # the new topic's configs, as DescribeConfigs shows them
                from .kafka_configs import created_topic_configs  # (it imports this module)

                configs = created_topic_configs(call.broker, mod, r.name, native)
            out.append(build(mod.CreatableTopicResult, name=r.name,
                             topic_id=topic_uuid(r.topic_id), error_code=ErrorCode.none,
                             error_message=None, num_partitions=r.num_partitions,
                             replication_factor=r.replication_factor, configs=configs))
        return build(cls, throttle_time=throttle, topics=tuple(out))

    def fail(code: int, message: str):
        return build(cls, throttle_time=throttle, topics=tuple(
            result(n, *(refused.get(n) or (code, message))) for n in dict.fromkeys(names)))

    def settled(image: MetadataImage, resp: P.CreateTopicsResponse) -> bool:
        return body.validate_only or all(
            r.name in image.topics for r in resp.topics if not r.error_code)

    if not native:
        return answer(None)
    request, throttled, throttle = kafka_quotas.mutations(call, 19, P.CreateTopicsRequest(
        topics=tuple(native), timeout_ms=timeout_ms(body),
        validate_only=bool(body.validate_only)))
    refused.update(throttled)
    if request is None:
        return answer(None)
    to_controller(call, request, answer, fail, settled, timeout_ms(body))
    return None


# --------------------------------------------------------------------------- DeleteTopics


@api(20, 1, 6)
def delete_topics(call: Call):
    body, version = call.request.body, call.request.api_version
    cls, mod = response(call, 20)
    image = call.broker.image
    by_id = {str(topic_uuid(t.topic_id)): n for n, t in image.topics.items()}
    wanted: list[tuple[str | None, Any]] = []  # (name or None: unknown id, id given or None)
    if version >= 6:
        for t in body.topics:
            tid = str(t.topic_id) if t.topic_id is not None else NULL_UUID
            if tid == NULL_UUID:  # by name
                wanted.append((t.name, None))
            else:
                wanted.append((by_id.get(tid), t.topic_id))
    else:
        wanted = [(n, None) for n in body.topic_names]
    ids = {n: topic_uuid(t.topic_id) for n, t in image.topics.items()}

    def result(name, tid, code: int, message: str | None):
        if tid is None and name is not None:
            tid = ids.get(name)
        return build(mod.DeletableTopicResult, name=name, topic_id=tid, error_code=kcode(code),
                     error_message=message)

    unknown_ids = [(n, tid) for n, tid in wanted if n is None]
    names = list(dict.fromkeys(n for n, _ in wanted if n is not None))
    given = {n: tid for n, tid in wanted if n is not None}
    throttle, throttled = NO_THROTTLE, {}  # controller_mutation_rate (actors/mutation_quota.py)

    def answer(resp: P.DeleteTopicsResponse | None):
        out = [result(None, tid, P.ErrorCode.UNKNOWN_TOPIC_ID, f"no topic with id {tid}")
               for _, tid in unknown_ids]
        out += [result(r.name, given.get(r.name), r.error_code, r.error_message)
                for r in (resp.results if resp else ())]
        out += [result(n, given.get(n), *throttled[n]) for n in throttled]
        return build(cls, throttle_time=throttle, responses=tuple(out))

    def fail(code: int, message: str):
        return answer(P.DeleteTopicsResponse(results=tuple(
            P.TopicResult(name=n, error_code=code, error_message=message) for n in names)))

    def settled(image: MetadataImage, resp: P.DeleteTopicsResponse) -> bool:
        return not any(r.name in image.topics for r in resp.results if not r.error_code)

    if not names:
        return answer(None)
    request, throttled, throttle = kafka_quotas.mutations(call, 20, P.DeleteTopicsRequest(
        topic_names=tuple(names), timeout_ms=timeout_ms(body)))
    names = [n for n in names if n not in throttled]
    if request is None:
        return answer(None)
    to_controller(call, request, answer, fail, settled, timeout_ms(body))
    return None


# ----------------------------------------------------------------------- CreatePartitions


@api(37, 0, 3)
def create_partitions(call: Call):
    body = call.request.body
    cls, mod = response(call, 37)
    names = [t.name for t in body.topics]
    refused = named_twice(names)
    throttle = NO_THROTTLE  # controller_mutation_rate (actors/mutation_quota.py)
    native = []
    for t in body.topics:
        if t.name in refused:
            continue
        if t.assignments:
            refused[t.name] = (P.ErrorCode.INVALID_REQUEST,
                               "manual replica assignment is not supported: rillet places the "
                               "new partitions; move them with AlterPartitionReassignments")
            continue
        native.append(P.CreatePartitionsTopic(name=t.name, count=int(t.count)))

    def result(name: str, code: int, message: str | None):
        return build(mod.CreatePartitionsTopicResult, name=name, error_code=kcode(code),
                     error_message=message)

    def answer(resp: P.CreatePartitionsResponse | None):
        out = [result(n, *refused[n]) for n in dict.fromkeys(names) if n in refused]
        out += [result(r.name, r.error_code, r.error_message)
                for r in (resp.results if resp else ())]
        return build(cls, throttle_time=throttle, results=tuple(out))

    def fail(code: int, message: str):
        return answer(P.CreatePartitionsResponse(results=tuple(
            P.TopicResult(name=t.name, error_code=code, error_message=message) for t in native)))

    counts = {t.name: t.count for t in native}

    def settled(image: MetadataImage, resp: P.CreatePartitionsResponse) -> bool:
        return body.validate_only or all(
            r.name in image.topics and len(image.topics[r.name].partitions) >= counts[r.name]
            for r in resp.results if not r.error_code)

    if not native:
        return answer(None)
    request, throttled, throttle = kafka_quotas.mutations(call, 37, P.CreatePartitionsRequest(
        topics=tuple(native), timeout_ms=timeout_ms(body),
        validate_only=bool(body.validate_only)))
    refused.update(throttled)
    native = [t for t in native if t.name not in throttled]
    if request is None:
        return answer(None)
    to_controller(call, request, answer, fail, settled, timeout_ms(body))
    return None


# ---------------------------------------------------------------------- DescribeCluster


@api(60, 0, 2)
def describe_cluster(call: Call):
    body, ctx = call.request.body, call.broker
    cls, mod = response(call, 60)
    if getattr(body, "endpoint_type", 1) not in (1,):  # 2: controllers (KIP-919)
        return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.unsupported_endpoint_type,
                     error_message="a broker describes brokers only (endpoint_type 1)",
                     cluster_id=ctx.cluster_id, brokers=())
    refused = describe_cluster_denied(call)  # ACLs (actors/kafka_auth.py)
    if refused is not None:
        return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode(refused[0]),
                     error_message=refused[1], cluster_id=ctx.cluster_id, brokers=())
    fenced_too = bool(getattr(body, "include_fenced_brokers", False))
    brokers = []
    for b in sorted(ctx.image.brokers.values(), key=lambda b: b.broker_id):
        if b.broker_id == ctx.broker_id and b.incarnation != ctx.incarnation:
            continue
        if b.fenced and not fenced_too:
            continue
        host, port = b.kafka_host, b.kafka_port
        if b.broker_id == ctx.broker_id:
            host, port = call.endpoint.host, call.endpoint.port
        if port:  # a broker without a KAFKA listener is not there for Kafka clients
            brokers.append(build(mod.DescribeClusterBroker, broker_id=b.broker_id, host=host,
                                 port=port, rack=b.rack, is_fenced=b.fenced))
    return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, error_message=None,
                 endpoint_type=1, cluster_id=ctx.cluster_id,
                 controller_id=ctx.controller_id if ctx.controller_id >= 0 else -1,
                 brokers=tuple(brokers))


# ------------------------------------------------------------ elections and reassignments


@api(43, 0, 2)
def elect_leaders(call: Call):
    body = call.request.body
    cls, mod = response(call, 43)
    election_type = getattr(body, "election_type", 0)
    wanted = body.topic_partitions

    def answer(resp: P.ElectLeadersResponse | None, code: int = 0, message: str = ""):
        by_topic: dict[str, list] = {}
        for r in resp.results if resp else ():
            by_topic.setdefault(r.topic, []).append(build(
                mod.PartitionResult, partition_id=r.partition, error_code=kcode(r.error_code),
                error_message=r.error_message))
        results = tuple(build(mod.ReplicaElectionResult, topic=t, partition_result=tuple(ps))
                        for t, ps in by_topic.items())
        return build(cls, throttle_time=NO_THROTTLE, error_code=kcode(code),
                     replica_election_results=results)

    def fail(code: int, message: str):
        if wanted is None:  # nothing to name: the top-level error (v1+)
            return answer(None, code, message)
        return answer(P.ElectLeadersResponse(results=tuple(
            P.ElectLeadersResult(topic=t.topic, partition=p, error_code=code,
                                 error_message=message)
            for t in wanted for p in t.partitions)))

    if election_type != 0:
        return fail(P.ErrorCode.INVALID_REQUEST,
                    "only preferred leader election (election_type 0) is served; unclean "
                    "elections follow the topic's unclean.leader.election.enable")
    topics = None if wanted is None else tuple(
        P.GroupTopicPartitions(topic=t.topic, partitions=tuple(int(p) for p in t.partitions))
        for t in wanted)
    to_controller(call, P.ElectLeadersRequest(topics=topics), answer, fail)
    return None


@api(45, 0, 0)
def alter_partition_reassignments(call: Call):
    body = call.request.body
    cls, mod = response(call, 45)
    items = [(t.name, int(p.partition_index),
              None if p.replicas is None else tuple(int(b) for b in p.replicas))
             for t in body.topics for p in t.partitions]

    def answer(resp: P.AlterPartitionReassignmentsResponse, code: int = 0, message=None):
        by_topic: dict[str, list] = {}
        for r in resp.results:
            by_topic.setdefault(r.topic, []).append(build(
                mod.ReassignablePartitionResponse, partition_index=r.partition,
                error_code=kcode(r.error_code), error_message=r.error_message))
        return build(cls, throttle_time=NO_THROTTLE, error_code=kcode(code),
                     error_message=message, responses=tuple(
                         build(mod.ReassignableTopicResponse, name=t, partitions=tuple(ps))
                         for t, ps in by_topic.items()))

    def fail(code: int, message: str):
        return answer(P.AlterPartitionReassignmentsResponse(results=tuple(
            P.ElectLeadersResult(topic=t, partition=n, error_code=code, error_message=message)
            for t, n, _ in items)))

    if not items:
        return answer(P.AlterPartitionReassignmentsResponse())
    native = P.AlterPartitionReassignmentsRequest(partitions=tuple(
        P.ReassignPartition(topic=t, partition=n, replicas=r) for t, n, r in items))
    to_controller(call, native, answer, fail)
    return None


@api(46, 0, 0)
def list_partition_reassignments(call: Call):
    """The reassignments in progress in this broker's image (adding/removing replicas, the
    state AlterPartitionReassignments leaves until the new replicas are in sync)."""
    body = call.request.body
    cls, mod = response(call, 46)
    refused = describe_cluster_denied(call)  # ACLs (actors/kafka_auth.py)
    if refused is not None:
        return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode(refused[0]),
                     error_message=refused[1], topics=())
    image = call.broker.image
    if body.topics is None:
        selected = [(n, None) for n in sorted(image.topics)]
    else:
        selected = [(t.name, set(t.partition_indexes)) for t in body.topics]
    topics = []
    for name, wanted in selected:
        topic = image.topics.get(name)
        if topic is None:
            continue
        parts = tuple(
            build(mod.OngoingPartitionReassignment, partition_index=p.partition,
                  replicas=tuple(p.replicas), adding_replicas=tuple(p.adding_replicas),
                  removing_replicas=tuple(p.removing_replicas))
            for p in sorted(topic.partitions.values(), key=lambda p: p.partition)
            if (p.adding_replicas or p.removing_replicas)
            and (wanted is None or p.partition in wanted))
        if parts:
            topics.append(build(mod.OngoingTopicReassignment, name=name, partitions=parts))
    return build(cls, throttle_time=NO_THROTTLE, error_code=ErrorCode.none, error_message=None,
                 topics=tuple(topics))
