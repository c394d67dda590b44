"""Which ACL operations each native request needs (Kafka's table; actors/authorize.py).

A rule is ``rule(who, request) -> Verdict``: None (allowed), ``Deny(code, message)`` or
``Part(allowed request, merge)`` for requests about several resources, where the refused
items are answered with their own error and the rest is served.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from rillet.transport import protocol as P

from .authorize import Deny, Part, Verdict, Who

E = P.ErrorCode
TOPIC_DENIED = E.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = E.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = E.CLUSTER_AUTHORIZATION_FAILED
TXN_DENIED = E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED

RULES: dict[type, Callable[[Who, object], Verdict]] = {}


def rule(*types: type):
    def register(fn):
        for t in types:
            RULES[t] = fn
        return fn

    return register


def _msg(w: Who, operation: str, resource_type: str, name: str) -> str:
    return (f"{w.principal} is not authorized to {operation} {resource_type} {name!r} "
            "(its ACLs; docs/security.md)")


def _need(w: Who, operation: str, resource_type: str, name: str, code: int) -> Deny | None:
    if w.may(operation, resource_type, name):
        return None
    return Deny(code, _msg(w, operation, resource_type, name))


def _first(*denials: Deny | None) -> Deny | None:
    return next((d for d in denials if d is not None), None)


def _topics(w: Who, operation: str, names: Iterable[str]) -> Deny | None:
    return _first(*(_need(w, operation, "TOPIC", n, TOPIC_DENIED) for n in dict.fromkeys(names)))


def default_rule(w: Who, req: object) -> Verdict:
    """An API without a rule: admins only (ALTER on the CLUSTER)."""
    return _need(w, "ALTER", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)


def _allowed(response: object) -> object:
    return response


@rule(P.ApiVersionsRequest)
def _always(w: Who, req) -> Verdict:
    return None


@rule(P.BrokerStatsRequest, P.BrokerCountersRequest, P.DescribeAclsRequest,
      P.DescribeLogDirsRequest, P.ListPartitionReassignmentsRequest)
def _describe_cluster(w: Who, req) -> Verdict:
    return _need(w, "DESCRIBE", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)


@rule(P.CreateAclsRequest, P.DeleteAclsRequest, P.ElectLeadersRequest,
      P.AlterPartitionReassignmentsRequest)
def _alter_cluster(w: Who, req) -> Verdict:
    return _need(w, "ALTER", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)


# ------------------------------------------------------------------ partition requests


@rule(P.DeleteRecordsRequest)
def _delete_records(w: Who, req: P.DeleteRecordsRequest) -> Verdict:
    """DELETE on every named topic (Kafka refuses per partition; here the request whole)."""
    return _topics(w, "DELETE", (t.name for t in req.topics))


def _split_topics(w: Who, operation: str, topics) -> tuple[tuple, tuple]:
    allowed, denied = [], []
    for t in topics:
        (allowed if w.may(operation, "TOPIC", t.name) else denied).append(t)
    return tuple(allowed), tuple(denied)


def _partition_part(req, allowed, denied, response_type, topic_response, code=TOPIC_DENIED):
    """The allowed topics of ``req``; the refused ones answered per partition."""
    if not denied:
        return None
    extra = tuple(topic_response(t, code) for t in denied)

    def merge(response):
        if not isinstance(response, response_type):
            return response
        return replace(response, topics=response.topics + extra)

    return Part(replace(req, topics=allowed), merge)


@rule(P.ProduceRequest)
def _produce(w: Who, req: P.ProduceRequest) -> Verdict:
    def answer(t, code):
        return P.ProduceTopicResponse(name=t.name, partitions=tuple(
            P.ProducePartitionResponse(partition=p.partition, error_code=code,
                                       error_message=_msg(w, "WRITE", "TOPIC", t.name)
                                       if code == TOPIC_DENIED else
                                       _msg(w, "WRITE", "TRANSACTIONAL_ID",
                                            req.transactional_id or ""))
            for p in t.partitions))

    if req.transactional_id and not w.may("WRITE", "TRANSACTIONAL_ID", req.transactional_id):
        return _partition_part(req, (), req.topics, P.ProduceResponse, answer, TXN_DENIED)
    return _partition_part(req, *_split_topics(w, "WRITE", req.topics), P.ProduceResponse,
                           answer)


@rule(P.FetchRequest)
def _fetch(w: Who, req: P.FetchRequest) -> Verdict:
    if req.session_epoch != P.FINAL_EPOCH:
        # an incremental fetch session (KIP-227) keeps serving the partitions it holds:
        # a followers' tool, not a client's; ACL changes would not reach its partitions
        return _need(w, "CLUSTER_ACTION", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)

    def answer(t, code):
        return P.FetchTopicResponse(name=t.name, partitions=tuple(
            P.FetchPartitionResponse(partition=p.partition, error_code=code)
            for p in t.partitions))

    return _partition_part(req, *_split_topics(w, "READ", req.topics), P.FetchResponse, answer)


@rule(P.ListOffsetsRequest)
def _list_offsets(w: Who, req: P.ListOffsetsRequest) -> Verdict:
    def answer(t, code):
        return P.ListOffsetsTopicResponse(name=t.name, partitions=tuple(
            P.ListOffsetsPartitionResponse(partition=p.partition, error_code=code)
            for p in t.partitions))

    return _partition_part(req, *_split_topics(w, "DESCRIBE", req.topics),
                           P.ListOffsetsResponse, answer)


@rule(P.OffsetForLeaderEpochRequest)
def _epochs(w: Who, req: P.OffsetForLeaderEpochRequest) -> Verdict:
    def answer(t, code):
        return P.OffsetForLeaderEpochTopicResponse(name=t.name, partitions=tuple(
            P.EpochEndOffset(partition=p.partition, error_code=code) for p in t.partitions))

    return _partition_part(req, *_split_topics(w, "DESCRIBE", req.topics),
                           P.OffsetForLeaderEpochResponse, answer)


@rule(P.MetadataRequest)
def _metadata(w: Who, req: P.MetadataRequest) -> Verdict:
    if req.topics is None:  # every topic: those it may not describe are left out

        def hide(response):
            if not isinstance(response, P.MetadataResponse):
                return response
            return replace(response, topics=tuple(
                t for t in response.topics if w.may("DESCRIBE", "TOPIC", t.name)))

        return Part(req, hide, refused=False)
    names = tuple(dict.fromkeys(req.topics))
    denied = tuple(n for n in names if not w.may("DESCRIBE", "TOPIC", n))
    if not denied:
        return None
    extra = tuple(P.TopicMetadata(name=n, error_code=TOPIC_DENIED) for n in denied)

    def merge(response):
        if not isinstance(response, P.MetadataResponse):
            return response
        return replace(response, topics=response.topics + extra)

    return Part(replace(req, topics=tuple(n for n in names if n not in denied)), merge)


# ---------------------------------------------------------------------- topic admin


def _admin_part(req, field, items, ok, response_type, results_field, refused):
    """The allowed ``items`` of ``req.<field>`` go to the controller; each refused one is
    answered with ``refused(item)`` in ``response.<results_field>``."""
    allowed = tuple(i for i in items if ok(i))
    denied = tuple(i for i in items if not ok(i))
    if not denied:
        return None
    extra = tuple(refused(i) for i in denied)

    def merge(response):
        if not isinstance(response, response_type):
            return response
        return replace(response, **{results_field: getattr(response, results_field) + extra})

    return Part(replace(req, **{field: allowed}), merge, empty=not allowed)


@rule(P.CreateTopicsRequest)
def _create_topics(w: Who, req: P.CreateTopicsRequest) -> Verdict:
    if w.may_cluster("CREATE"):
        return None
    return _admin_part(
        req, "topics", req.topics, lambda t: w.may("CREATE", "TOPIC", t.name),
        P.CreateTopicsResponse, "topics",
        lambda t: P.CreatableTopicResult(name=t.name, error_code=TOPIC_DENIED,
                                         error_message=_msg(w, "CREATE", "TOPIC", t.name)))


@rule(P.DeleteTopicsRequest)
def _delete_topics(w: Who, req: P.DeleteTopicsRequest) -> Verdict:
    return _admin_part(
        req, "topic_names", req.topic_names, lambda n: w.may("DELETE", "TOPIC", n),
        P.DeleteTopicsResponse, "results",
        lambda n: P.TopicResult(name=n, error_code=TOPIC_DENIED,
                                error_message=_msg(w, "DELETE", "TOPIC", n)))


@rule(P.CreatePartitionsRequest)
def _create_partitions(w: Who, req: P.CreatePartitionsRequest) -> Verdict:
    return _admin_part(
        req, "topics", req.topics, lambda t: w.may("ALTER", "TOPIC", t.name),
        P.CreatePartitionsResponse, "results",
        lambda t: P.TopicResult(name=t.name, error_code=TOPIC_DENIED,
                                error_message=_msg(w, "ALTER", "TOPIC", t.name)))


_CONFIG_RESOURCES = {
    P.ConfigResourceType.TOPIC: ("TOPIC", None, TOPIC_DENIED),
    P.ConfigResourceType.GROUP: ("GROUP", None, GROUP_DENIED),
    P.ConfigResourceType.BROKER: ("CLUSTER", "kafka-cluster", CLUSTER_DENIED),
    P.ConfigResourceType.USER: ("CLUSTER", "kafka-cluster", CLUSTER_DENIED),
}


def _config_check(w: Who, operation: str, r) -> tuple[bool, int, str]:
    kind = _CONFIG_RESOURCES.get(r.resource_type)
    if kind is None:
        return True, 0, ""  # an unknown type: the handler answers INVALID_REQUEST
    rtype, fixed, code = kind
    if r.resource_type == P.ConfigResourceType.USER:  # a user's key: who may log in
        operation = "ALTER" if operation == "ALTER_CONFIGS" else "DESCRIBE"
    name = fixed or r.resource_name
    return w.may(operation, rtype, name), code, _msg(w, operation, rtype, name)


@rule(P.DescribeConfigsRequest)
def _describe_configs(w: Who, req: P.DescribeConfigsRequest) -> Verdict:
    def refused(r):
        _, code, message = _config_check(w, "DESCRIBE_CONFIGS", r)
        return P.DescribeConfigsResult(resource_type=r.resource_type,
                                       resource_name=r.resource_name, error_code=code,
                                       error_message=message)

    part = _admin_part(req, "resources", req.resources,
                       lambda r: _config_check(w, "DESCRIBE_CONFIGS", r)[0],
                       P.DescribeConfigsResponse, "results", refused)
    return None if part is None else replace(part, empty=False)  # answered by the session


@rule(P.AlterConfigsRequest)
def _alter_configs(w: Who, req: P.AlterConfigsRequest) -> Verdict:
    def refused(r):
        _, code, message = _config_check(w, "ALTER_CONFIGS", r)
        return P.AlterConfigsResult(resource_type=r.resource_type,
                                    resource_name=r.resource_name, error_code=code,
                                    error_message=message)

    return _admin_part(req, "resources", req.resources,
                       lambda r: _config_check(w, "ALTER_CONFIGS", r)[0],
                       P.AlterConfigsResponse, "results", refused)


# --------------------------------------------------------------------------- groups


def _group(w: Who, operation: str, group_id: str) -> Deny | None:
    return _need(w, operation, "GROUP", group_id, GROUP_DENIED)


@rule(P.FindCoordinatorRequest)
def _find_coordinator(w: Who, req: P.FindCoordinatorRequest) -> Verdict:
    if req.key_type == P.COORDINATOR_TRANSACTION:
        return _need(w, "DESCRIBE", "TRANSACTIONAL_ID", req.key, TXN_DENIED)
    if req.key_type == P.COORDINATOR_SHARE:  # brokers' own lookup (share-state coordinator)
        return _need(w, "CLUSTER_ACTION", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)
    return _group(w, "DESCRIBE", req.key)


@rule(P.ConsumerGroupHeartbeatRequest, P.ShareGroupHeartbeatRequest)
def _heartbeat(w: Who, req) -> Verdict:
    """READ on the group; a subscription naming a topic the principal may not describe is
    refused with TOPIC_AUTHORIZATION_FAILED (Kafka's KIP-848 handler does the same)."""
    return _first(_group(w, "READ", req.group_id),
                  _topics(w, "DESCRIBE", req.subscribed_topic_names or ()))


@rule(P.OffsetCommitRequest, P.AlterShareGroupOffsetsRequest, P.ShareFetchRequest,
      P.ShareAcknowledgeRequest)
def _group_read_topics(w: Who, req) -> Verdict:
    return _first(_group(w, "READ", req.group_id),
                  _topics(w, "READ", (t.name for t in req.topics)))


@rule(P.OffsetDeleteRequest, P.DeleteShareGroupOffsetsRequest)
def _offset_delete(w: Who, req) -> Verdict:
    return _first(_group(w, "DELETE", req.group_id),
                  _topics(w, "READ", (t.topic for t in req.topics)))


@rule(P.OffsetFetchRequest, P.DescribeShareGroupOffsetsRequest)
def _offset_fetch(w: Who, req) -> Verdict:
    denied = _group(w, "DESCRIBE", req.group_id)
    if denied is not None:
        return denied
    if req.topics is not None:
        return _topics(w, "DESCRIBE", (t.topic for t in req.topics))
    if not isinstance(req, P.OffsetFetchRequest):
        return None

    def hide(response):  # every committed offset: only the topics it may describe
        if not isinstance(response, P.OffsetFetchResponse):
            return response
        return replace(response, topics=tuple(
            t for t in response.topics if w.may("DESCRIBE", "TOPIC", t.name)))

    return Part(req, hide, refused=False)


@rule(P.ConsumerGroupDescribeRequest, P.ShareGroupDescribeRequest)
def _describe_groups(w: Who, req) -> Verdict:
    return _first(*(_group(w, "DESCRIBE", g) for g in req.group_ids))


@rule(P.DeleteGroupsRequest)
def _delete_groups(w: Who, req: P.DeleteGroupsRequest) -> Verdict:
    return _first(*(_group(w, "DELETE", g) for g in req.groups_names))


@rule(P.ListGroupsRequest)
def _list_groups(w: Who, req: P.ListGroupsRequest) -> Verdict:
    if w.may_cluster("DESCRIBE"):
        return None

    def hide(response):
        if not isinstance(response, P.ListGroupsResponse):
            return response
        return replace(response, groups=tuple(
            g for g in response.groups if w.may("DESCRIBE", "GROUP", g.group_id)))

    return Part(req, hide, refused=False)


# --------------------------------------------------------------------- transactions


def _txn(w: Who, operation: str, transactional_id: str) -> Deny | None:
    return _need(w, operation, "TRANSACTIONAL_ID", transactional_id, TXN_DENIED)


@rule(P.InitProducerIdRequest)
def _init_producer_id(w: Who, req: P.InitProducerIdRequest) -> Verdict:
    if req.transactional_id:
        return _txn(w, "WRITE", req.transactional_id)
    if w.may_cluster("IDEMPOTENT_WRITE") or w.may_write_some_topic():
        return None
    return Deny(CLUSTER_DENIED, f"{w.principal} may not produce idempotently: it needs "
                "IDEMPOTENT_WRITE on the CLUSTER or WRITE on a topic (docs/security.md)")


@rule(P.AddPartitionsToTxnRequest)
def _add_partitions(w: Who, req: P.AddPartitionsToTxnRequest) -> Verdict:
    return _first(_txn(w, "WRITE", req.transactional_id),
                  _topics(w, "WRITE", (t.name for t in req.topics)))


@rule(P.AddOffsetsToTxnRequest)
def _add_offsets(w: Who, req: P.AddOffsetsToTxnRequest) -> Verdict:
    return _first(_txn(w, "WRITE", req.transactional_id), _group(w, "READ", req.group_id))


@rule(P.EndTxnRequest)
def _end_txn(w: Who, req: P.EndTxnRequest) -> Verdict:
    return _txn(w, "WRITE", req.transactional_id)


@rule(P.TxnOffsetCommitRequest)
def _txn_offset_commit(w: Who, req: P.TxnOffsetCommitRequest) -> Verdict:
    return _first(_txn(w, "WRITE", req.transactional_id), _group(w, "READ", req.group_id),
                  _topics(w, "READ", (t.name for t in req.topics)))


@rule(P.DescribeTransactionsRequest)
def _describe_txns(w: Who, req: P.DescribeTransactionsRequest) -> Verdict:
    return _first(*(_txn(w, "DESCRIBE", t) for t in req.transactional_ids))


@rule(P.ListTransactionsRequest)
def _list_txns(w: Who, req: P.ListTransactionsRequest) -> Verdict:
    def hide(response):
        if not isinstance(response, P.ListTransactionsResponse):
            return response
        return replace(response, transaction_states=tuple(
            t for t in response.transaction_states
            if w.may("DESCRIBE", "TRANSACTIONAL_ID", t.transactional_id)))

    return Part(req, hide, refused=False)


# ----------------------------------------------------------------------- client quotas


@rule(P.AlterClientQuotasRequest)
def _alter_quotas(w: Who, req) -> Verdict:  # Kafka: ALTER_CONFIGS on the CLUSTER
    return _need(w, "ALTER_CONFIGS", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)


@rule(P.DescribeClientQuotasRequest)
def _describe_quotas(w: Who, req) -> Verdict:  # Kafka: DESCRIBE_CONFIGS on the CLUSTER
    return _need(w, "DESCRIBE_CONFIGS", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)


# ------------------------------------------------------------------------ feature levels


@rule(P.DescribeFeaturesRequest)  # Kafka answers it in ApiVersions: no ACL needed
def _describe_features(w: Who, req) -> Verdict:
    return None


@rule(P.UpdateFeaturesRequest)  # Kafka: ALTER on the CLUSTER
def _update_features(w: Who, req) -> Verdict:
    return _need(w, "ALTER", "CLUSTER", "kafka-cluster", CLUSTER_DENIED)
