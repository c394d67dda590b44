"""ACLs on the KAFKA listener (docs/security.md, "SASL"): the native session's rules.

With ``authorizer.class.name`` set, a Kafka request is checked with the rules of
actors/authorize_rules.py where its handler builds the native request (``gated``: Produce,
Fetch, ListOffsets, InitProducerId, DeleteRecords, the admin APIs that go to the controller,
the group and offset APIs), for the connection's principal (``User:NAME`` after SASL,
``User:ANONYMOUS`` on a PLAINTEXT KAFKA listener) and peer host; so a denied produce
appends nothing to the partitions it names, exactly as natively. The requests whose handlers
read the metadata image directly are checked here: Metadata (``may_describe_topic``: topics
the principal may not describe are left out of an all-topics answer and named with
TOPIC_AUTHORIZATION_FAILED when asked for), the classic group requests (``classic_denied``:
READ on the group; DescribeGroups DESCRIBE, per group; ListGroups without DESCRIBE on the CLUSTER lists
only the groups the principal may describe, as Kafka's), DescribeConfigs
(``describe_configs_denied``: DESCRIBE_CONFIGS on each TOPIC or GROUP, on the CLUSTER for
BROKER resources, answered per resource as Kafka does) and the APIs of ``CLUSTER_CHECKED``,
which need that operation on the CLUSTER or the connection is closed.
FindCoordinator (``find_coordinator_denied``: DESCRIBE on the GROUP / TRANSACTIONAL_ID, per
key), DescribeCluster and ListPartitionReassignments (``describe_cluster_denied``: DESCRIBE
on the CLUSTER) answer their own error codes, as Kafka's broker does.

``DECISIONS`` names, for every API a handler module registers, where its authorization is
decided; an API missing from it needs ALTER on the CLUSTER (the native ``default_rule``) or
the connection is closed, and tests/unit/test_kafka_auth.py fails, so a new handler module
cannot open a door around the ACLs by forgetting them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import authorize as A
from . import group_classic as CL

E = A.E

NATIVE = "native rule (authorize_rules.py) where the handler builds the native request"
# api key -> where its authorization is decided (see the module docstring)
DECISIONS: dict[int, str] = {
    18: "none (ApiVersions)",
    17: "none: before authentication (SaslHandshake)",
    36: "none: it authenticates (SaslAuthenticate)",
    3: "handler: may_describe_topic (Metadata)",
    0: NATIVE, 1: NATIVE, 2: NATIVE, 22: NATIVE,  # Produce, Fetch, ListOffsets, InitProducerId
    19: NATIVE, 20: NATIVE, 37: NATIVE,  # CreateTopics, DeleteTopics, CreatePartitions
    43: NATIVE, 45: NATIVE,  # ElectLeaders, AlterPartitionReassignments
    33: NATIVE, 44: NATIVE,  # AlterConfigs, IncrementalAlterConfigs
    21: NATIVE,  # DeleteRecords
    8: NATIVE, 9: NATIVE, 47: NATIVE, 42: NATIVE, 68: NATIVE,  # offsets, DeleteGroups, KIP-848
    24: NATIVE, 25: NATIVE, 26: NATIVE, 28: NATIVE,  # transactions
    11: "gate_group: classic_denied", 12: "gate_group: classic_denied",  # Join, Heartbeat
    13: "gate_group: classic_denied", 14: "gate_group: classic_denied",  # Leave, Sync
    15: "gate_group: per group (GROUP_AUTHORIZATION_FAILED for the refused ones)",
    16: "gate_group: the describable groups without DESCRIBE on the CLUSTER",  # ListGroups
    10: "handler: find_coordinator_denied (DESCRIBE on the GROUP / TRANSACTIONAL_ID)",
    60: "handler: describe_cluster_denied (DESCRIBE on the CLUSTER)",
    32: "handler: describe_configs_denied (DESCRIBE_CONFIGS per resource)",
    46: "handler: describe_cluster_denied (DESCRIBE on the CLUSTER)",
    48: NATIVE, 49: NATIVE,  # DescribeClientQuotas, AlterClientQuotas
    57: NATIVE,  # UpdateFeatures (ALTER on the CLUSTER)
    69: "gate_group: native rule (ConsumerGroupDescribe)",
    76: "gate_group: native rule (ShareGroupHeartbeat)",
    77: "gate_group: native rule (ShareGroupDescribe)",
    78: "handler: READ on the GROUP (kafka_share._group_denied), then the native rule per topic",
    79: "handler: READ on the GROUP (kafka_share._group_denied), then the native rule per topic",
}

# api key -> the CLUSTER operation a principal needs or its connection is closed (for a
# handler that cannot answer a refusal itself; none today)
CLUSTER_CHECKED: dict[int, str] = {}


def who_of(call: Any) -> A.Who | None:
    """The ``Who`` of a Kafka request when the broker's authorizer is on; else None."""
    ctx = call.broker
    if ctx is None or not A.authorizer_of(ctx.broker_configs).enabled:
        return None
    session = call.session
    principal = session.principal if session is not None else None
    host = session.host if session is not None else None
    return A.who(ctx, principal, host)


def gated(call: Any, native: Any, respond: Callable[[Any], None]):
    """(native request to dispatch or None if answered, respond): authorize.gate for the
    Kafka connection's principal; unchanged without an authorizer."""
    w = who_of(call)
    if w is None:
        return native, respond
    return A.gate(w, native, respond)


def gate_group(call: Any, message: Any, respond: Callable[[Any], None]):
    """``gated`` for a message to the group coordinator: native requests by their rules
    (a whole refusal answered as ``CL.Failure``, which every converter understands),
    classic ones by ``classic_denied``."""
    w = who_of(call)
    if w is None:
        return message, respond
    if isinstance(message, CL.ClassicList):
        if w.may_cluster("DESCRIBE"):
            return message, respond

        # Kafka's ListGroups: without DESCRIBE on the CLUSTER, the groups it may describe
        def only_describable(answer: Any) -> None:
            if not isinstance(answer, CL.Failure):
                answer = [row for row in answer if w.may("DESCRIBE", "GROUP", row[0])]
            respond(answer)

        return message, only_describable
    if isinstance(message, CL.ClassicDescribe):
        return _describe_groups_part(w, message, respond)
    if isinstance(message, CL.ClassicJoin | CL.ClassicSync | CL.ClassicHeartbeat | CL.ClassicLeave):
        refused = classic_denied(w, message)
        if refused is not None:
            respond(CL.Failure(refused[0], refused[1]))
            return None, respond
        return message, respond
    from .authorize_rules import RULES, default_rule

    verdict = RULES.get(type(message), default_rule)(w, message)
    if verdict is None:
        return message, respond
    if isinstance(verdict, A.Deny):
        respond(CL.Failure(verdict.code, verdict.message))
        return None, respond
    merge = verdict.merge

    def merged(answer: Any) -> None:
        respond(merge(answer) if not isinstance(answer, CL.Failure) else answer)

    if verdict.empty:
        from rillet.transport import protocol as P

        merged(P.RESPONSES[message.API]())
        return None, respond
    return verdict.request, merged


def _describe_groups_part(w: A.Who, message: Any, respond: Callable[[Any], None]):
    """DescribeGroups: the groups the principal may not describe are answered
    GROUP_AUTHORIZATION_FAILED each, the others are described (Kafka's per-group answer)."""
    ids = tuple(message.group_ids)
    allowed = tuple(g for g in ids if w.may("DESCRIBE", "GROUP", g))
    if allowed == ids:
        return message, respond

    def refused(g: str) -> Any:
        return CL.Failure(E.GROUP_AUTHORIZATION_FAILED, f"{w.principal} may not describe group {g!r}")

    def merged(answer: Any) -> None:
        got = iter(answer if isinstance(answer, list) else [answer] * len(allowed))
        respond([next(got) if g in allowed else refused(g) for g in ids])

    if not allowed:
        merged([])
        return None, respond
    return CL.ClassicDescribe(group_ids=allowed), merged


def classic_denied(w: A.Who, message: Any) -> tuple[int, str] | None:
    """(code, message) refusing a classic group request, or None when allowed."""
    if not w.may("READ", "GROUP", message.group_id):
        return (E.GROUP_AUTHORIZATION_FAILED,
                f"{w.principal} may not read group {message.group_id!r}")
    return None


def may_describe_topic(call: Any) -> Callable[[str], bool]:
    """A predicate: may this connection's principal describe topic ``name``."""
    w = who_of(call)
    if w is None:
        return lambda _name: True
    return lambda name: w.may("DESCRIBE", "TOPIC", name)


def cluster_check_fails(call: Any) -> str | None:
    """Why this request may not be served (CLUSTER_CHECKED; an API without an entry in
    DECISIONS needs ALTER on the CLUSTER), or None."""
    key = call.request.api_key
    op = CLUSTER_CHECKED.get(key) or (None if key in DECISIONS else "ALTER")
    if op is None:
        return None
    w = who_of(call)
    if w is None or w.may_cluster(op):
        return None
    return f"{w.principal} may not {op} on the CLUSTER (api {key})"


def find_coordinator_denied(call: Any, key: str, key_type: int) -> tuple[int, str] | None:
    """(code, message) refusing FindCoordinator of ``key``, or None: the native rule
    (DESCRIBE on the GROUP, GROUP_AUTHORIZATION_FAILED; on the TRANSACTIONAL_ID,
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED), as Kafka's broker answers it per key."""
    w = who_of(call)
    if w is None:
        return None
    from rillet.transport import protocol as P

    from .authorize_rules import RULES

    verdict = RULES[P.FindCoordinatorRequest](w, P.FindCoordinatorRequest(key=key,
                                                                          key_type=key_type))
    if isinstance(verdict, A.Deny):
        return verdict.code, verdict.message
    return None


def describe_cluster_denied(call: Any) -> tuple[int, str] | None:
    """(CLUSTER_AUTHORIZATION_FAILED, message) unless the principal may DESCRIBE the
    CLUSTER (Kafka's rule for DescribeCluster)."""
    w = who_of(call)
    if w is None or w.may_cluster("DESCRIBE"):
        return None
    return E.CLUSTER_AUTHORIZATION_FAILED, f"{w.principal} may not DESCRIBE the CLUSTER"


# DescribeConfigs resource type -> (ACL resource type, error code when refused)
_CONFIG_RESOURCES = {2: ("TOPIC", E.TOPIC_AUTHORIZATION_FAILED),
                     32: ("GROUP", E.GROUP_AUTHORIZATION_FAILED),
                     4: ("CLUSTER", E.CLUSTER_AUTHORIZATION_FAILED)}


def describe_configs_denied(call: Any, resource_type: int, name: str) -> tuple[int, str] | None:
    """(code, message) refusing DescribeConfigs of one resource, or None: DESCRIBE_CONFIGS
    on the topic / group, on the CLUSTER for a broker (Kafka's rule; a topic the principal
    may not describe is refused whether it exists or not)."""
    w = who_of(call)
    if w is None or resource_type not in _CONFIG_RESOURCES:
        return None
    kind, code = _CONFIG_RESOURCES[resource_type]
    allowed = (w.may_cluster("DESCRIBE_CONFIGS") if kind == "CLUSTER"
               else w.may("DESCRIBE_CONFIGS", kind, name))
    if allowed:
        return None
    what = "the CLUSTER" if kind == "CLUSTER" else f"{kind} {name!r}"
    return code, f"{w.principal} may not DESCRIBE_CONFIGS on {what}"
