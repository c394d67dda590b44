"""Every request and response of the rillet wire protocol, as frozen dataclasses.

A message class carries two class attributes: ``API`` (a stable name, Kafka's where one exists)
and ``VERSION``. Requests end in ``Request`` and responses in ``Response``; a response answers
the request with the same ``API``. Field names are Kafka's, snake_cased. Nested parts (topics,
partitions) are dataclasses of their own. Record batches are typed ``Records``: they travel as
raw extra frames, never re-encoded (see ``codec.py`` and docs/protocol.md).

Conventions: offsets, timestamps (ms since the epoch) and ids are ints; -1 means "none";
``error_code`` is an ``ErrorCode`` value (0 = NONE); ``error_message`` is ``None`` or a
one-line human explanation. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import field
from typing import Annotated, ClassVar

from rillet.frozen import frozen

from .protocol_acl import (  # noqa: F401 - re-exported: protocol.CreateAclsRequest etc.
    ACL_REQUESTS,
    ACL_RESPONSES,
    AclCreationResult,
    AclEntry,
    AclFilterEntry,
    CreateAclsRequest,
    CreateAclsResponse,
    DeleteAclsFilterResult,
    DeleteAclsRequest,
    DeleteAclsResponse,
    DescribeAclsRequest,
    DescribeAclsResponse,
)
from .protocol_features import (  # noqa: F401 - re-exported: protocol.UpdateFeaturesRequest etc.
    FEATURE_REQUESTS,
    FEATURE_RESPONSES,
    BrokerFeatures,
    DescribeFeaturesRequest,
    DescribeFeaturesResponse,
    FeatureUpdate,
    SupportedFeature,
    UpdatableFeatureResult,
    UpdateFeaturesRequest,
    UpdateFeaturesResponse,
)
from .protocol_quota import (  # noqa: F401 - re-exported: protocol.AlterClientQuotasRequest etc.
    QUOTA_REQUESTS,
    QUOTA_RESPONSES,
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    AlterClientQuotasResult,
    ClientQuotaAlteration,
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
    QuotaDescription,
    QuotaEntityPart,
    QuotaFilterComponent,
    QuotaOpEntry,
)

#: Marker for a field that carries record batches as a raw extra frame.
RAW = "raw-frame"
Records = Annotated[bytes, RAW]


class ErrorCode(enum.IntEnum):
    """Error codes; Kafka's names and numbers wherever Kafka has one."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    INVALID_FETCH_SIZE = 4
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    BROKER_NOT_AVAILABLE = 8
    REPLICA_NOT_AVAILABLE = 9
    MESSAGE_TOO_LARGE = 10
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    NOT_ENOUGH_REPLICAS = 19
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
    INVALID_REQUIRED_ACKS = 21
    ILLEGAL_GENERATION = 22
    # authorization (docs/security.md): the principal's ACLs do not allow the request
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31  # also: an inter-broker API sent to the client listener
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    SECURITY_DISABLED = 54  # an ACL request to a cluster without an authorizer
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_CONFIG = 40
    NOT_CONTROLLER = 41
    INVALID_REQUEST = 42
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    INVALID_PRODUCER_ID_MAPPING = 49
    INVALID_TRANSACTION_TIMEOUT = 50
    CONCURRENT_TRANSACTIONS = 51
    TRANSACTION_COORDINATOR_FENCED = 52
    PRODUCER_FENCED = 90
    TRANSACTIONAL_ID_NOT_FOUND = 105
    KAFKA_STORAGE_ERROR = 56
    UNKNOWN_PRODUCER_ID = 59
    REASSIGNMENT_IN_PROGRESS = 60
    FENCED_LEADER_EPOCH = 74
    UNKNOWN_LEADER_EPOCH = 75
    STALE_BROKER_EPOCH = 77  # a heartbeat of a broker process that a newer one replaced
    OFFSET_NOT_AVAILABLE = 78
    MEMBER_ID_REQUIRED = 79
    PREFERRED_LEADER_NOT_AVAILABLE = 80
    GROUP_MAX_SIZE_REACHED = 81
    INVALID_RECORD = 87
    UNSTABLE_OFFSET_COMMIT = 88
    THROTTLING_QUOTA_EXCEEDED = 89
    UNKNOWN_MEMBER_ID = 25
    REBALANCE_IN_PROGRESS = 27
    INVALID_SESSION_TIMEOUT = 26
    GROUP_ID_NOT_FOUND = 69
    UNKNOWN_TOPIC_ID = 100
    # incremental fetch sessions (KIP-227): the follower starts a new session
    FETCH_SESSION_ID_NOT_FOUND = 70
    INVALID_FETCH_SESSION_EPOCH = 71
    FENCED_MEMBER_EPOCH = 110
    UNRELEASED_INSTANCE_ID = 111
    # consumer groups
    OFFSET_METADATA_TOO_LARGE = 12
    INVALID_GROUP_ID = 24
    NON_EMPTY_GROUP = 68
    FENCED_INSTANCE_ID = 82
    GROUP_SUBSCRIBED_TO_TOPIC = 86
    UNSUPPORTED_ASSIGNOR = 112
    STALE_MEMBER_EPOCH = 113
    INVALID_REGULAR_EXPRESSION = 128
    # replication (docs/replication.md)
    OPERATION_NOT_ATTEMPTED = 55
    ELECTION_NOT_NEEDED = 84
    NO_REASSIGNMENT_IN_PROGRESS = 85
    INVALID_UPDATE_VERSION = 95
    INELIGIBLE_REPLICA = 107
    # share groups (KIP-932, docs/queues.md)
    INCONSISTENT_GROUP_PROTOCOL = 23  # a group id used as both a consumer and a share group
    INVALID_RECORD_STATE = 121  # acknowledging a record this member has not acquired
    FENCED_STATE_EPOCH = 124  # a share-partition state written with a stale state epoch


_RETRIABLE = frozenset(
    {
        ErrorCode.CORRUPT_MESSAGE,  # Kafka: may be transient (corrupted in flight)
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,  # metadata may be propagating
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.BROKER_NOT_AVAILABLE,
        ErrorCode.REPLICA_NOT_AVAILABLE,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.NOT_CONTROLLER,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.OFFSET_NOT_AVAILABLE,
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
        ErrorCode.REBALANCE_IN_PROGRESS,
        ErrorCode.UNKNOWN_TOPIC_ID,
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.THROTTLING_QUOTA_EXCEEDED,
        ErrorCode.FETCH_SESSION_ID_NOT_FOUND,
        ErrorCode.INVALID_FETCH_SESSION_EPOCH,
    }
)


def code_of(name: str) -> int:
    """The wire code of an error *name* (the pure cores' vocabulary: Kafka's names, "NONE"
    for success). ``ErrorCode`` is the one table; a name it lacks is UNKNOWN_SERVER_ERROR."""
    try:
        return ErrorCode[name]
    except KeyError:
        return ErrorCode.UNKNOWN_SERVER_ERROR


def retriable(code: int) -> bool:
    """True if a client may retry the request that produced ``code`` (Kafka's classification).
    OUT_OF_ORDER_SEQUENCE_NUMBER and UNKNOWN_PRODUCER_ID are not: as in Kafka, only the
    idempotent producer resends after them, itself, in sequence order (rillet/_sender.py)."""
    return code in _RETRIABLE


class ConfigResourceType(enum.IntEnum):
    """Kafka's ConfigResource.Type numbers."""

    TOPIC = 2
    BROKER = 4
    GROUP = 32  # a share group's configs (KIP-848/932; docs/queues.md)
    USER = 64  # a user's CURVE public key (rillet's own; docs/security.md)


class ConfigSource(enum.IntEnum):
    """Where a described config value comes from (Kafka's DescribeConfigs source)."""

    UNKNOWN = 0
    DYNAMIC_TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2  # set for this broker (dynamic broker configs, docs/operations.md)
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3  # set as every broker's default (the resource "")
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    GROUP_CONFIG = 8  # set on the group (a GROUP resource)


class AlterConfigOp(enum.IntEnum):
    """IncrementalAlterConfigs operations."""

    SET = 0
    DELETE = 1


EARLIEST_TIMESTAMP = -2  # ListOffsets: the log start offset
LATEST_TIMESTAMP = -1  # ListOffsets: the log end offset (next offset to be written)
CONSUMER_REPLICA_ID = -1  # Fetch/ListOffsets from a client, not a follower

_msg = frozen(kw_only=True)


# ---------------------------------------------------------------------------------- envelope


@_msg
class ErrorResponse:
    """Reply to a request the broker could not decode or does not support.

    Sent instead of the typed response; ``correlation_id`` echoes the request's when it could
    be read, else -1.
    """

    API: ClassVar[str] = "Error"
    VERSION: ClassVar[int] = 0
    error_code: int
    error_message: str


# ------------------------------------------------------------------------------- ApiVersions


@_msg
class ApiVersionsRequest:
    """Which APIs and versions does the broker serve? Also the readiness probe."""

    API: ClassVar[str] = "ApiVersions"
    VERSION: ClassVar[int] = 0


@_msg
class ApiVersion:
    api: str
    min_version: int
    max_version: int


@_msg
class ApiVersionsResponse:
    API: ClassVar[str] = "ApiVersions"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    api_versions: tuple[ApiVersion, ...] = ()
    broker_id: int = -1
    cluster_id: str = ""


# ------------------------------------------------------------------------------- BrokerStats


@_msg
class BrokerStatsRequest:
    """Runtime figures of the answering broker (Kafka exposes these as JMX metrics):
    connections, threads, request bytes in flight. Served on both listeners."""

    API: ClassVar[str] = "BrokerStats"
    VERSION: ClassVar[int] = 0


@_msg
class BrokerStatsResponse:
    """``connection_count``: open client sessions on the client listener (a session starts
    with a peer's first request and is released when its connection closes or it idles past
    ``connections.max.idle.ms``); the ``*_total`` counters count since the broker started;
    ``threads``: OS threads of the broker process; ``queued_request_bytes``: bytes of client
    requests received and not yet finished with (``queued.max.request.bytes``)."""

    API: ClassVar[str] = "BrokerStats"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    broker_id: int = -1
    connection_count: int = 0
    connection_creation_total: int = 0
    connection_close_disconnected_total: int = 0
    connection_close_idle_total: int = 0
    inter_broker_connection_count: int = 0
    threads: int = 0
    queued_request_bytes: int = 0
    lane_threads: dict[str, int] = field(default_factory=dict)  # dispatcher lane -> workers


# ---------------------------------------------------------------------------------- Metadata


@_msg
class MetadataRequest:
    """Brokers and topic layout. ``topics=None`` asks for every topic."""

    API: ClassVar[str] = "Metadata"
    VERSION: ClassVar[int] = 0
    topics: tuple[str, ...] | None = None
    allow_auto_topic_creation: bool = False


@_msg
class BrokerMetadata:
    broker_id: int
    host: str
    port: int
    rack: str | None = None


@_msg
class PartitionMetadata:
    partition: int
    error_code: int = 0
    leader: int = -1
    leader_epoch: int = -1
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()
    offline_replicas: tuple[int, ...] = ()
    #: replicas that found a corrupt batch in their log and have not re-fetched it yet
    damaged_replicas: tuple[int, ...] = ()
    #: why there is no leader (leader -1), e.g. the only in-sync replica is damaged
    offline_reason: str | None = None


@_msg
class TopicMetadata:
    name: str
    error_code: int = 0
    topic_id: str = ""
    is_internal: bool = False
    partitions: tuple[PartitionMetadata, ...] = ()


@_msg
class MetadataResponse:
    API: ClassVar[str] = "Metadata"
    VERSION: ClassVar[int] = 0
    brokers: tuple[BrokerMetadata, ...] = ()
    cluster_id: str = ""
    controller_id: int = -1
    topics: tuple[TopicMetadata, ...] = ()


# ------------------------------------------------------------------------------ CreateTopics


@_msg
class CreatableTopic:
    """``num_partitions``/``replication_factor`` of -1 take the broker defaults
    (num.partitions, default.replication.factor). ``configs`` are topic configs by Kafka name."""

    name: str
    num_partitions: int = -1
    replication_factor: int = -1
    configs: dict[str, str] = field(default_factory=dict)


@_msg
class CreateTopicsRequest:
    API: ClassVar[str] = "CreateTopics"
    VERSION: ClassVar[int] = 0
    topics: tuple[CreatableTopic, ...]
    timeout_ms: int = 30000
    validate_only: bool = False


@_msg
class CreatableTopicResult:
    name: str
    error_code: int = 0
    error_message: str | None = None
    topic_id: str = ""
    num_partitions: int = -1
    replication_factor: int = -1


@_msg
class CreateTopicsResponse:
    API: ClassVar[str] = "CreateTopics"
    VERSION: ClassVar[int] = 0
    topics: tuple[CreatableTopicResult, ...] = ()


# ------------------------------------------------------------------------------ DeleteTopics


@_msg
class DeleteTopicsRequest:
    API: ClassVar[str] = "DeleteTopics"
    VERSION: ClassVar[int] = 0
    topic_names: tuple[str, ...]
    timeout_ms: int = 30000


@_msg
class TopicResult:
    """Per-topic outcome of DeleteTopics and CreatePartitions."""

    name: str
    error_code: int = 0
    error_message: str | None = None


@_msg
class DeleteTopicsResponse:
    API: ClassVar[str] = "DeleteTopics"
    VERSION: ClassVar[int] = 0
    results: tuple[TopicResult, ...] = ()


# -------------------------------------------------------------------------- CreatePartitions


@_msg
class CreatePartitionsTopic:
    """Grow ``name`` to ``count`` partitions in total (never shrinks)."""

    name: str
    count: int


@_msg
class CreatePartitionsRequest:
    API: ClassVar[str] = "CreatePartitions"
    VERSION: ClassVar[int] = 0
    topics: tuple[CreatePartitionsTopic, ...]
    timeout_ms: int = 30000
    validate_only: bool = False


@_msg
class CreatePartitionsResponse:
    API: ClassVar[str] = "CreatePartitions"
    VERSION: ClassVar[int] = 0
    results: tuple[TopicResult, ...] = ()


# --------------------------------------------------------------------------- DescribeConfigs


@_msg
class ConfigResource:
    """``resource_type`` is a ``ConfigResourceType``; ``config_names=None`` means all."""

    resource_type: int
    resource_name: str
    config_names: tuple[str, ...] | None = None


@_msg
class DescribeConfigsRequest:
    API: ClassVar[str] = "DescribeConfigs"
    VERSION: ClassVar[int] = 0
    resources: tuple[ConfigResource, ...]


@_msg
class ConfigEntry:
    name: str
    value: str | None
    read_only: bool = False
    is_default: bool = False
    source: int = ConfigSource.UNKNOWN
    is_sensitive: bool = False


@_msg
class DescribeConfigsResult:
    resource_type: int
    resource_name: str
    error_code: int = 0
    error_message: str | None = None
    configs: tuple[ConfigEntry, ...] = ()


@_msg
class DescribeConfigsResponse:
    API: ClassVar[str] = "DescribeConfigs"
    VERSION: ClassVar[int] = 0
    results: tuple[DescribeConfigsResult, ...] = ()


# ------------------------------------------------------------------------------ AlterConfigs


@_msg
class AlterableConfig:
    """One change (Kafka's IncrementalAlterConfigs): ``op`` SET with a value, or DELETE
    (revert to the default; ``value`` ignored)."""

    name: str
    value: str | None
    op: int = AlterConfigOp.SET


@_msg
class AlterConfigsResource:
    resource_type: int
    resource_name: str
    configs: tuple[AlterableConfig, ...]


@_msg
class AlterConfigsRequest:
    """Incremental: only the named keys change; all changes of a resource apply or none."""

    API: ClassVar[str] = "AlterConfigs"
    VERSION: ClassVar[int] = 0
    resources: tuple[AlterConfigsResource, ...]
    validate_only: bool = False


@_msg
class AlterConfigsResult:
    resource_type: int
    resource_name: str
    error_code: int = 0
    error_message: str | None = None


@_msg
class AlterConfigsResponse:
    API: ClassVar[str] = "AlterConfigs"
    VERSION: ClassVar[int] = 0
    results: tuple[AlterConfigsResult, ...] = ()


# ----------------------------------------------------------------------------------- Produce


@_msg
class ProducePartition:
    """``records``: one or more whole record batches (logstore.batch format), unstamped."""

    partition: int
    records: Records


@_msg
class ProduceTopic:
    name: str
    partitions: tuple[ProducePartition, ...]


@_msg
class ProduceRequest:
    """``acks``: 0 (no response is sent), 1 (leader appended) or -1 (all in-sync replicas;
    equals 1 while a partition has one replica). The producer id, epoch and base sequence
    ride in each batch header; ``transactional_id`` is reserved for transactions."""

    API: ClassVar[str] = "Produce"
    VERSION: ClassVar[int] = 0
    acks: int = -1
    timeout_ms: int = 30000
    transactional_id: str | None = None
    topics: tuple[ProduceTopic, ...]
    client_id: str = ""  # the producer's client.id (quotas: docs/security.md)


@_msg
class ProducePartitionResponse:
    """``base_offset`` is the offset given to the first record of the first batch."""

    partition: int
    error_code: int = 0
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None


@_msg
class ProduceTopicResponse:
    name: str
    partitions: tuple[ProducePartitionResponse, ...]


@_msg
class ProduceResponse:
    API: ClassVar[str] = "Produce"
    VERSION: ClassVar[int] = 0
    topics: tuple[ProduceTopicResponse, ...] = ()
    throttle_time_ms: int = 0


# ------------------------------------------------------------------------------------- Fetch


@_msg
class FetchPartition:
    """``fetch_offset``: the first offset wanted. ``partition_max_bytes``: a soft cap (at
    least one whole batch is returned). ``current_leader_epoch`` -1 skips fencing.
    ``last_fetched_epoch`` (followers, KIP-320): the epoch of the last batch the follower
    holds; the leader answers ``diverging_epoch`` if that epoch ended earlier on its log."""

    partition: int
    fetch_offset: int
    partition_max_bytes: int = 1048576
    current_leader_epoch: int = -1
    log_start_offset: int = -1
    last_fetched_epoch: int = -1


@_msg
class FetchTopic:
    name: str
    partitions: tuple[FetchPartition, ...]


@_msg
class FetchForgottenTopic:
    """Partitions an incremental fetch session stops fetching (KIP-227)."""

    name: str
    partitions: tuple[int, ...]


#: ``FetchRequest.session_epoch``: no session (a full fetch, as before sessions).
FINAL_EPOCH = -1
#: ``FetchRequest.session_epoch``: start a new session with the partitions listed.
INITIAL_EPOCH = 0


@_msg
class FetchRequest:
    """Long poll: answered as soon as ``min_bytes`` are available over all partitions, or when
    ``max_wait_ms`` elapses, whichever is first. ``max_bytes`` caps the whole response (soft,
    like Kafka's). ``replica_id`` is -1 for consumers, the broker id for followers.

    Followers use incremental fetch sessions (KIP-227; docs/replication.md, "Fetch
    sessions"): ``session_epoch`` 0 opens one with the partitions listed, the answer carries
    its ``session_id``; later requests name it with the next epoch (1, 2, ...) and list only
    the partitions whose fetch offset or leader epoch changed, plus ``forgotten_topics``. The
    leader answers such a poll as soon as any partition of the session has records or a new
    high watermark for the follower. -1 (``FINAL_EPOCH``): no session."""

    API: ClassVar[str] = "Fetch"
    VERSION: ClassVar[int] = 0
    replica_id: int = CONSUMER_REPLICA_ID
    max_wait_ms: int = 500
    min_bytes: int = 1
    max_bytes: int = 52428800
    isolation_level: int = 0
    topics: tuple[FetchTopic, ...]
    # a follower's process (BrokerHeartbeat.incarnation): the leader proposes it for the ISR
    # only with this, so a restarted follower's old progress never counts (KIP-903)
    replica_incarnation: str = ""
    session_id: int = 0
    session_epoch: int = FINAL_EPOCH
    forgotten_topics: tuple[FetchForgottenTopic, ...] = ()
    client_id: str = ""  # the consumer's client.id (quotas: docs/security.md)


READ_UNCOMMITTED = 0  # Fetch/ListOffsets isolation levels, Kafka's numbers
READ_COMMITTED = 1


@_msg
class AbortedTransaction:
    """In a read_committed fetch: ``producer_id``'s transaction that began at ``first_offset``
    was aborted (its batches up to its ABORT marker are to be skipped)."""

    producer_id: int
    first_offset: int


@_msg
class FetchPartitionResponse:
    """``records``: whole batches as stored, all below ``high_watermark`` (may be empty); for
    a read_committed fetch (``isolation_level`` 1) all below ``last_stable_offset``, with the
    ``aborted_transactions`` that overlap them (None for read_uncommitted)."""

    partition: int
    error_code: int = 0
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: Records = b""
    # KIP-320: the follower's last fetched epoch ended at this offset on the leader (and the
    # leader's epoch there): truncate to it before fetching again; -1: no divergence
    diverging_epoch: int = -1
    diverging_end_offset: int = -1
    aborted_transactions: tuple[AbortedTransaction, ...] | None = None


@_msg
class FetchTopicResponse:
    name: str
    partitions: tuple[FetchPartitionResponse, ...]


@_msg
class FetchResponse:
    """``session_id``: the follower's fetch session (0: none). An incremental answer lists
    only partitions with something new; ``error_code`` FETCH_SESSION_ID_NOT_FOUND or
    INVALID_FETCH_SESSION_EPOCH: start a new session (epoch 0)."""

    API: ClassVar[str] = "Fetch"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    throttle_time_ms: int = 0
    topics: tuple[FetchTopicResponse, ...] = ()
    session_id: int = 0


# ------------------------------------------------------------------------------- ListOffsets


@_msg
class ListOffsetsPartition:
    """``timestamp``: EARLIEST_TIMESTAMP (-2), LATEST_TIMESTAMP (-1), or ms since the epoch
    (the first offset whose timestamp is >= it)."""

    partition: int
    timestamp: int
    current_leader_epoch: int = -1


@_msg
class ListOffsetsTopic:
    name: str
    partitions: tuple[ListOffsetsPartition, ...]


@_msg
class ListOffsetsRequest:
    API: ClassVar[str] = "ListOffsets"
    VERSION: ClassVar[int] = 0
    replica_id: int = CONSUMER_REPLICA_ID
    isolation_level: int = 0
    topics: tuple[ListOffsetsTopic, ...]


@_msg
class ListOffsetsPartitionResponse:
    """``offset`` -1 with error NONE: no record has a timestamp >= the one asked for."""

    partition: int
    error_code: int = 0
    timestamp: int = -1
    offset: int = -1
    leader_epoch: int = -1


@_msg
class ListOffsetsTopicResponse:
    name: str
    partitions: tuple[ListOffsetsPartitionResponse, ...]


@_msg
class ListOffsetsResponse:
    API: ClassVar[str] = "ListOffsets"
    VERSION: ClassVar[int] = 0
    topics: tuple[ListOffsetsTopicResponse, ...] = ()


# ---------------------------------------------------------------------------- consumer groups
# See docs/consumer-groups.md. Group requests go to the group's coordinator (FindCoordinator);
# a broker that is not (or not yet) the coordinator answers NOT_COORDINATOR (16) or
# COORDINATOR_LOAD_IN_PROGRESS (14) in the response's error_code.


COORDINATOR_GROUP = 0  # FindCoordinator key types, Kafka's numbers
COORDINATOR_TRANSACTION = 1
COORDINATOR_SHARE = 2  # key "group:topic:partition": the share-state coordinator (KIP-932)


@_msg
class FindCoordinatorRequest:
    """Which broker coordinates ``key``: a group (``key_type`` 0, ``COORDINATOR_GROUP``) or a
    transactional id (1, ``COORDINATOR_TRANSACTION``)? Creates the internal
    ``__consumer_offsets`` / ``__transaction_state`` topic on first use."""

    API: ClassVar[str] = "FindCoordinator"
    VERSION: ClassVar[int] = 0
    key: str
    key_type: int = 0


@_msg
class FindCoordinatorResponse:
    API: ClassVar[str] = "FindCoordinator"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    node_id: int = -1
    host: str = ""
    port: int = -1


@_msg
class GroupTopicPartitions:
    """A topic and some of its partition numbers (heartbeat assignments, describe)."""

    topic: str
    partitions: tuple[int, ...]


@_msg
class ConsumerGroupHeartbeatRequest:
    """KIP-848 heartbeat. ``member_epoch``: 0 join, current epoch, -1 leave, -2 static leave.
    ``None`` fields mean "unchanged since the last heartbeat"; ``owned_partitions`` None also
    means unchanged (send it when joining and whenever it changed)."""

    API: ClassVar[str] = "ConsumerGroupHeartbeat"
    VERSION: ClassVar[int] = 0
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned_partitions: tuple[GroupTopicPartitions, ...] | None = None
    client_id: str = ""
    client_host: str = ""
    max_wait_ms: int = 0
    """A long poll: the coordinator may hold the answer this long (ms; capped by the heartbeat
    interval) while it has nothing new for the member; 0 answers at once."""


@_msg
class ConsumerGroupHeartbeatResponse:
    """``assignment``: the partitions the member may own now (None in the answer to a leave)."""

    API: ClassVar[str] = "ConsumerGroupHeartbeat"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = -1
    heartbeat_interval_ms: int = 0
    assignment: tuple[GroupTopicPartitions, ...] | None = None


@_msg
class OffsetCommitPartition:
    partition: int
    committed_offset: int
    committed_leader_epoch: int = -1
    committed_metadata: str = ""


@_msg
class OffsetCommitTopic:
    name: str
    partitions: tuple[OffsetCommitPartition, ...]


@_msg
class OffsetCommitRequest:
    """A member's commit (its member id and epoch), or a simple/admin commit (member_id "",
    member_epoch -1: only while the group has no members)."""

    API: ClassVar[str] = "OffsetCommit"
    VERSION: ClassVar[int] = 0
    group_id: str
    member_id: str = ""
    member_epoch: int = -1
    group_instance_id: str | None = None
    topics: tuple[OffsetCommitTopic, ...] = ()


@_msg
class PartitionError:
    partition: int
    error_code: int = 0


@_msg
class TopicPartitionErrors:
    name: str
    partitions: tuple[PartitionError, ...]


@_msg
class OffsetCommitResponse:
    """``error_code`` is set when the whole request failed (NOT_COORDINATOR, member errors);
    otherwise per partition."""

    API: ClassVar[str] = "OffsetCommit"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    topics: tuple[TopicPartitionErrors, ...] = ()


@_msg
class OffsetFetchRequest:
    """``topics`` None: every committed offset of the group. ``member_epoch`` -1 skips the
    member check (admin tools)."""

    API: ClassVar[str] = "OffsetFetch"
    VERSION: ClassVar[int] = 0
    group_id: str
    member_id: str = ""
    member_epoch: int = -1
    topics: tuple[GroupTopicPartitions, ...] | None = None
    # KIP-447: a partition with a pending transactional offset answers UNSTABLE_OFFSET_COMMIT
    require_stable: bool = False


@_msg
class OffsetFetchPartition:
    """``committed_offset`` -1: nothing committed."""

    partition: int
    committed_offset: int = -1
    committed_leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1
    error_code: int = 0


@_msg
class OffsetFetchTopic:
    name: str
    partitions: tuple[OffsetFetchPartition, ...]


@_msg
class OffsetFetchResponse:
    API: ClassVar[str] = "OffsetFetch"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    topics: tuple[OffsetFetchTopic, ...] = ()


@_msg
class OffsetDeleteRequest:
    API: ClassVar[str] = "OffsetDelete"
    VERSION: ClassVar[int] = 0
    group_id: str
    topics: tuple[GroupTopicPartitions, ...] = ()


@_msg
class OffsetDeleteResponse:
    API: ClassVar[str] = "OffsetDelete"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    topics: tuple[TopicPartitionErrors, ...] = ()


@_msg
class ListGroupsRequest:
    """Groups coordinated by THIS broker (ask every broker for all). ``states_filter``:
    Kafka's state names (Empty, Reconciling, Stable, ...); empty = all."""

    API: ClassVar[str] = "ListGroups"
    VERSION: ClassVar[int] = 0
    states_filter: tuple[str, ...] = ()


@_msg
class ListedGroup:
    group_id: str
    group_state: str
    protocol_type: str = "consumer"


@_msg
class ListGroupsResponse:
    API: ClassVar[str] = "ListGroups"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    groups: tuple[ListedGroup, ...] = ()


@_msg
class ConsumerGroupDescribeRequest:
    API: ClassVar[str] = "ConsumerGroupDescribe"
    VERSION: ClassVar[int] = 0
    group_ids: tuple[str, ...]


@_msg
class DescribedGroupMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    member_epoch: int = -1
    member_state: str = ""
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    assignment: tuple[GroupTopicPartitions, ...] = ()
    target_assignment: tuple[GroupTopicPartitions, ...] = ()
    pending_revocation: tuple[GroupTopicPartitions, ...] = ()


@_msg
class DescribedGroup:
    """``group_state`` "Dead" for an unknown group; ``error_code`` NOT_COORDINATOR when this
    broker does not coordinate it."""

    group_id: str
    error_code: int = 0
    error_message: str | None = None
    group_state: str = ""
    group_epoch: int = -1
    assignment_epoch: int = -1
    assignor_name: str = ""
    members: tuple[DescribedGroupMember, ...] = ()


@_msg
class ConsumerGroupDescribeResponse:
    API: ClassVar[str] = "ConsumerGroupDescribe"
    VERSION: ClassVar[int] = 0
    groups: tuple[DescribedGroup, ...] = ()


@_msg
class DeleteGroupsRequest:
    API: ClassVar[str] = "DeleteGroups"
    VERSION: ClassVar[int] = 0
    groups_names: tuple[str, ...]


@_msg
class DeletableGroupResult:
    group_id: str
    error_code: int = 0
    error_message: str | None = None


@_msg
class DeleteGroupsResponse:
    API: ClassVar[str] = "DeleteGroups"
    VERSION: ClassVar[int] = 0
    results: tuple[DeletableGroupResult, ...] = ()


GROUP_REQUESTS = (
    ConsumerGroupHeartbeatRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    OffsetDeleteRequest,
    ListGroupsRequest,
    ConsumerGroupDescribeRequest,
    DeleteGroupsRequest,
)


# --------------------------------------------------------------------- cluster (broker to broker)
# See docs/cluster.md. Sent by brokers to each other, never by clients: a broker serves them
# only on its inter-broker listener (``INTER_BROKER_APIS`` below); on the client listener they
# are refused with CLUSTER_AUTHORIZATION_FAILED (31).


@_msg
class RaftRequest:
    """One Raft message between controller voters: ``message`` is the CBOR encoding of
    ``coordinator.raft.wire.message_to_dict``, as a raw frame (an append of a topic with
    thousands of partitions is larger than a header frame may be). One-way: the reply is an
    empty ack."""

    API: ClassVar[str] = "Raft"
    VERSION: ClassVar[int] = 0
    message: Records


@_msg
class RaftResponse:
    API: ClassVar[str] = "Raft"
    VERSION: ClassVar[int] = 0
    error_code: int = 0


@_msg
class BrokerHeartbeatRequest:
    """A broker's registration and heartbeat, every ``broker.heartbeat.interval.ms``, to the
    active controller. The first one (or one with a new address) registers the broker;
    ``metadata_offset`` is the last metadata log index the broker has applied. ``host:port``
    is its client listener, ``internal_host:internal_port`` its inter-broker listener (the
    address other brokers use for replica fetches, AlterPartition and forwarding).
    ``incarnation`` identifies the broker process (new at every start): the controller fences
    a previous incarnation at once when a new one heartbeats. ``clean_shutdown``: whether the
    previous process of this broker shut down cleanly. ``want_shut_down``: the broker is
    stopping (SIGTERM) and asks for a controlled shutdown (its leaderships moved first)."""

    API: ClassVar[str] = "BrokerHeartbeat"
    VERSION: ClassVar[int] = 0
    broker_id: int
    host: str
    port: int
    rack: str | None = None
    metadata_offset: int = 0
    incarnation: str = ""
    clean_shutdown: bool = True
    internal_host: str = ""
    internal_port: int = 0
    want_shut_down: bool = False
    kafka_host: str = ""  # the KAFKA listener (advertised), "" if none
    kafka_port: int = 0
    metadata_version_min: int = 0  # the metadata.version levels it reads (docs/operations.md)
    metadata_version_max: int = 0


@_msg
class BrokerHeartbeatResponse:
    """``error_code`` NOT_CONTROLLER (41) from a broker that is not the active controller;
    ``controller_id`` is its best guess of the active one (-1: unknown).
    ``should_shut_down``: the controlled shutdown asked for is committed (the broker leads
    no partition and is in no ISR): it may exit."""

    API: ClassVar[str] = "BrokerHeartbeat"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    controller_id: int = -1
    is_fenced: bool = True
    should_shut_down: bool = False
    error_message: str | None = None  # why a registration is refused (UNSUPPORTED_VERSION)


@_msg
class MetadataFetchRequest:
    """Committed metadata log entries from ``start_index`` (Raft index, 1-based) on; served
    by any controller voter to brokers that are not voters."""

    API: ClassVar[str] = "MetadataFetch"
    VERSION: ClassVar[int] = 0
    start_index: int
    max_entries: int = 500


@_msg
class MetadataFetchResponse:
    """``snapshot`` (the image at ``snapshot_index``) is set when ``start_index`` was
    compacted away: load it, then apply ``entries``, the payloads of entries
    ``first_index, first_index + 1, ...`` (b"" for a control entry)."""

    API: ClassVar[str] = "MetadataFetch"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    controller_id: int = -1
    snapshot: bytes | None = None
    snapshot_index: int = 0
    first_index: int = 0
    entries: tuple[bytes, ...] = ()


# ------------------------------------------------------------------------------ replication


@_msg
class AlterPartitionRequest:
    """A partition leader's ISR change, to the active controller (Kafka's AlterPartition,
    one partition per request). ``partition_epoch`` is the state it was computed from."""

    API: ClassVar[str] = "AlterPartition"
    VERSION: ClassVar[int] = 0
    broker_id: int
    topic: str
    partition: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[int, ...]
    # the incarnation of each new_isr member as the leader saw it fetch ("" = unknown); the
    # controller refuses to add a replica whose registered incarnation differs (KIP-903)
    new_isr_incarnations: tuple[str, ...] = ()
    broker_incarnation: str = ""  # the sender's process: a dead process's request is refused


@_msg
class AlterPartitionResponse:
    """NONE once the change is in the metadata log (the leader applies it when its image
    shows it); FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, INELIGIBLE_REPLICA, ..."""

    API: ClassVar[str] = "AlterPartition"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None


@_msg
class ReplicaDamageRequest:
    """A replica found a corrupt batch in its log at ``offset`` (on a read, by the scrub or
    in recovery), to the active controller (inter-broker). The controller marks it damaged
    and takes it out of the ISR and leadership; the replica then truncates to ``offset`` and
    re-fetches from the leader (docs/replication.md, "Corruption and self-healing").
    ``leader_epoch``: the epoch the replica knew when it found the damage (the same on
    re-sends). From a replica already marked damaged, a report of the partition's current
    epoch is new damage and bumps the epoch again; an older one is a re-send."""

    API: ClassVar[str] = "ReplicaDamage"
    VERSION: ClassVar[int] = 0
    broker_id: int
    topic: str
    partition: int
    offset: int
    leader_epoch: int


@_msg
class ReplicaDamageResponse:
    """NONE once the mark is in the metadata log (or was already there);
    UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST (not a replica), NOT_CONTROLLER."""

    API: ClassVar[str] = "ReplicaDamage"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None


@_msg
class OffsetForLeaderEpochPartition:
    partition: int
    current_leader_epoch: int
    leader_epoch: int


@_msg
class OffsetForLeaderEpochTopic:
    name: str
    partitions: tuple[OffsetForLeaderEpochPartition, ...]


@_msg
class OffsetForLeaderEpochRequest:
    """A follower asks the leader where ``leader_epoch`` ends in the leader's log
    (KIP-101/279 truncation). ``replica_id``: the follower's broker id."""

    API: ClassVar[str] = "OffsetForLeaderEpoch"
    VERSION: ClassVar[int] = 0
    replica_id: int = CONSUMER_REPLICA_ID
    topics: tuple[OffsetForLeaderEpochTopic, ...]


@_msg
class EpochEndOffset:
    """``leader_epoch``: the largest epoch <= the requested one the leader knows;
    ``end_offset``: where it ends (-1/-1: unknown)."""

    partition: int
    error_code: int = 0
    leader_epoch: int = -1
    end_offset: int = -1


@_msg
class OffsetForLeaderEpochTopicResponse:
    name: str
    partitions: tuple[EpochEndOffset, ...]


@_msg
class OffsetForLeaderEpochResponse:
    API: ClassVar[str] = "OffsetForLeaderEpoch"
    VERSION: ClassVar[int] = 0
    topics: tuple[OffsetForLeaderEpochTopicResponse, ...] = ()


@_msg
class ElectLeadersRequest:
    """Preferred-leader election (``rillet elect-leaders``); ``topics`` None: all."""

    API: ClassVar[str] = "ElectLeaders"
    VERSION: ClassVar[int] = 0
    topics: tuple[GroupTopicPartitions, ...] | None = None
    timeout_ms: int = 30000


@_msg
class ElectLeadersResult:
    topic: str
    partition: int
    error_code: int = 0
    error_message: str | None = None


@_msg
class ElectLeadersResponse:
    API: ClassVar[str] = "ElectLeaders"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    results: tuple[ElectLeadersResult, ...] = ()


@_msg
class ReassignPartition:
    """``replicas``: the target replica list; None cancels an ongoing reassignment."""

    topic: str
    partition: int
    replicas: tuple[int, ...] | None


@_msg
class AlterPartitionReassignmentsRequest:
    API: ClassVar[str] = "AlterPartitionReassignments"
    VERSION: ClassVar[int] = 0
    partitions: tuple[ReassignPartition, ...]
    timeout_ms: int = 30000


@_msg
class AlterPartitionReassignmentsResponse:
    API: ClassVar[str] = "AlterPartitionReassignments"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    results: tuple[ElectLeadersResult, ...] = ()


@_msg
class InitProducerIdRequest:
    """An idempotent producer asks for its producer id and epoch (allocated by the
    controller and persisted through the metadata log). With a ``transactional_id`` it goes to
    that id's transaction coordinator instead (FindCoordinator key_type 1), which bumps the
    epoch and fences older instances; ``transaction_timeout_ms`` is the producer's
    ``transaction.timeout.ms``; ``producer_id`` / ``producer_epoch`` the pair it holds, if
    any (KIP-360: a retry or a recovery from an abortable error)."""

    API: ClassVar[str] = "InitProducerId"
    VERSION: ClassVar[int] = 0
    transactional_id: str | None = None
    timeout_ms: int = 30000
    transaction_timeout_ms: int = 60000
    producer_id: int = -1
    producer_epoch: int = -1


@_msg
class InitProducerIdResponse:
    API: ClassVar[str] = "InitProducerId"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    producer_id: int = -1
    producer_epoch: int = -1
    error_message: str | None = None


REPLICATION_REQUESTS = (
    AlterPartitionRequest,
    ReplicaDamageRequest,
    OffsetForLeaderEpochRequest,
    ElectLeadersRequest,
    AlterPartitionReassignmentsRequest,
    InitProducerIdRequest,
)
REPLICATION_RESPONSES = (
    AlterPartitionResponse,
    ReplicaDamageResponse,
    OffsetForLeaderEpochResponse,
    ElectLeadersResponse,
    AlterPartitionReassignmentsResponse,
    InitProducerIdResponse,
)

CLUSTER_REQUESTS = (RaftRequest, BrokerHeartbeatRequest, MetadataFetchRequest)
CLUSTER_RESPONSES = (RaftResponse, BrokerHeartbeatResponse, MetadataFetchResponse)


# ------------------------------------------------------------------------------ transactions
# See docs/transactions.md. AddPartitionsToTxn, AddOffsetsToTxn, EndTxn (and a transactional
# InitProducerId) go to the transactional id's coordinator; TxnOffsetCommit to the group's
# coordinator; WriteTxnMarkers from a transaction coordinator to partition leaders
# (inter-broker only). A broker that is not the coordinator answers NOT_COORDINATOR.


@_msg
class TxnTopic:
    """A topic and some of its partition numbers, in a transaction."""

    name: str
    partitions: tuple[int, ...]


@_msg
class AddPartitionsToTxnRequest:
    """Before its first write to a partition in a transaction the producer adds it.
    ``verify_only`` (KIP-890 part 1; sent by a partition leader, not by producers): add
    nothing, answer per partition whether it is in the producer's ongoing transaction (NONE)
    or not (INVALID_TXN_STATE, or the producer's error)."""

    API: ClassVar[str] = "AddPartitionsToTxn"
    VERSION: ClassVar[int] = 0
    transactional_id: str
    producer_id: int
    producer_epoch: int
    topics: tuple[TxnTopic, ...]
    verify_only: bool = False


@_msg
class AddPartitionsToTxnResponse:
    """``error_code`` set when the whole request failed (NOT_COORDINATOR, PRODUCER_FENCED,
    ...); then every partition carries it too."""

    API: ClassVar[str] = "AddPartitionsToTxn"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    results: tuple[TopicPartitionErrors, ...] = ()


@_msg
class AddOffsetsToTxnRequest:
    """The partition of ``__consumer_offsets`` that holds ``group_id`` joins the transaction
    (before TxnOffsetCommit to the group's coordinator)."""

    API: ClassVar[str] = "AddOffsetsToTxn"
    VERSION: ClassVar[int] = 0
    transactional_id: str
    producer_id: int
    producer_epoch: int
    group_id: str


@_msg
class AddOffsetsToTxnResponse:
    API: ClassVar[str] = "AddOffsetsToTxn"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None


@_msg
class EndTxnRequest:
    """Commit (``committed`` True) or abort the ongoing transaction. The answer comes once
    the decision is durable; the markers are written after (KIP-98)."""

    API: ClassVar[str] = "EndTxn"
    VERSION: ClassVar[int] = 0
    transactional_id: str
    producer_id: int
    producer_epoch: int
    committed: bool
    # 2: KIP-890 part 2 (the epoch is bumped, the answer carries the next pair); 1: a Kafka
    # client's EndTxn below v5, which keeps its epoch (nothing bumped; docs/kafka-compat.md)
    transaction_version: int = 2


@_msg
class EndTxnResponse:
    """``producer_id`` / ``producer_epoch``: the pair to use for the next transaction (the
    epoch is bumped at every end, KIP-890 part 2)."""

    API: ClassVar[str] = "EndTxn"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    producer_id: int = -1
    producer_epoch: int = -1


@_msg
class TxnOffsetCommitRequest:
    """Offsets committed inside a transaction: pending at the group coordinator until the
    transaction's marker reaches the group's ``__consumer_offsets`` partition (visible on
    COMMIT, dropped on ABORT). ``generation_id`` / ``member_id`` (KIP-447: the consumer's
    group metadata; -1 / "" skip the check) fence a zombie whose partitions moved."""

    API: ClassVar[str] = "TxnOffsetCommit"
    VERSION: ClassVar[int] = 0
    transactional_id: str
    group_id: str
    producer_id: int
    producer_epoch: int
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None
    topics: tuple[OffsetCommitTopic, ...] = ()


@_msg
class TxnOffsetCommitResponse:
    API: ClassVar[str] = "TxnOffsetCommit"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    topics: tuple[TopicPartitionErrors, ...] = ()


@_msg
class WritableTxnMarker:
    """One transaction's end: write a COMMIT (``transaction_result`` True) or ABORT marker for
    ``producer_id`` at ``producer_epoch`` to each partition listed, led here."""

    producer_id: int
    producer_epoch: int
    transaction_result: bool
    topics: tuple[TxnTopic, ...]
    coordinator_epoch: int
    # Kafka's TransactionVersion: 2 (the epoch above is the bumped one, KIP-890 part 2) or 1
    # (a Kafka client's transaction ended without a bump: the epoch is the data's own)
    transaction_version: int = 2


@_msg
class WriteTxnMarkersRequest:
    """Inter-broker only: a transaction coordinator to a partition leader. Each marker is
    answered once it is replicated (acks=all)."""

    API: ClassVar[str] = "WriteTxnMarkers"
    VERSION: ClassVar[int] = 0
    markers: tuple[WritableTxnMarker, ...]


@_msg
class WritableTxnMarkerResult:
    producer_id: int
    topics: tuple[TopicPartitionErrors, ...]


@_msg
class WriteTxnMarkersResponse:
    API: ClassVar[str] = "WriteTxnMarkers"
    VERSION: ClassVar[int] = 0
    markers: tuple[WritableTxnMarkerResult, ...] = ()


@_msg
class ListTransactionsRequest:
    """Admin (kafka-transactions.sh list): the transactional ids whose coordinator is the
    answering broker, filtered by state names (Kafka's: Empty, Ongoing, PrepareCommit, ...),
    producer ids and a minimum running time (``duration_filter_ms`` -1: any). Admin clients
    ask every broker."""

    API: ClassVar[str] = "ListTransactions"
    VERSION: ClassVar[int] = 0
    state_filters: tuple[str, ...] = ()
    producer_id_filters: tuple[int, ...] = ()
    duration_filter_ms: int = -1


@_msg
class ListedTransaction:
    transactional_id: str
    producer_id: int
    transaction_state: str


@_msg
class ListTransactionsResponse:
    API: ClassVar[str] = "ListTransactions"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    unknown_state_filters: tuple[str, ...] = ()
    transaction_states: tuple[ListedTransaction, ...] = ()


@_msg
class DescribeTransactionsRequest:
    """Admin: the state of these transactional ids, from their coordinator."""

    API: ClassVar[str] = "DescribeTransactions"
    VERSION: ClassVar[int] = 0
    transactional_ids: tuple[str, ...]


@_msg
class DescribedTransaction:
    """``error_code`` NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or
    TRANSACTIONAL_ID_NOT_FOUND per id; ``transaction_start_time_ms`` -1 when none is open."""

    error_code: int = 0
    transactional_id: str
    transaction_state: str = ""
    transaction_timeout_ms: int = 0
    transaction_start_time_ms: int = -1
    producer_id: int = -1
    producer_epoch: int = -1
    topics: tuple[TxnTopic, ...] = ()


@_msg
class DescribeTransactionsResponse:
    API: ClassVar[str] = "DescribeTransactions"
    VERSION: ClassVar[int] = 0
    transaction_states: tuple[DescribedTransaction, ...] = ()


TRANSACTION_REQUESTS = (
    AddPartitionsToTxnRequest,
    AddOffsetsToTxnRequest,
    EndTxnRequest,
    TxnOffsetCommitRequest,
    WriteTxnMarkersRequest,
    ListTransactionsRequest,
    DescribeTransactionsRequest,
)
TRANSACTION_RESPONSES = (
    AddPartitionsToTxnResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    TxnOffsetCommitResponse,
    WriteTxnMarkersResponse,
    ListTransactionsResponse,
    DescribeTransactionsResponse,
)


# ------------------------------------------------------------------------------ share groups
# See docs/queues.md (KIP-932 semantics, and rillet's delayed release and dead letters).
# ShareGroupHeartbeat and ShareGroupDescribe go to the group's coordinator (FindCoordinator
# key_type 0; ListGroups / DeleteGroups serve share groups too, ``protocol_type`` "share").
# ShareFetch, ShareAcknowledge, DescribeShareGroupOffsets, AlterShareGroupOffsets and
# DeleteShareGroupOffsets go to the partition's LEADER, which owns the share-partition state
# (an answer NOT_LEADER_OR_FOLLOWER: refresh metadata and retry). ReadShareGroupState and
# WriteShareGroupState are inter-broker: from a partition leader to the share-state
# coordinator of (group, topic, partition), the leader of its ``__share_group_state``
# partition (FindCoordinator key_type 2, key ``f"{group}:{topic}:{partition}"``).

#: AcknowledgementBatch.acknowledge_types, Kafka's numbers (0 is a gap: no record there)
ACK_GAP = 0
ACK_ACCEPT = 1
ACK_RELEASE = 2
ACK_REJECT = 3
ACK_RENEW = 4  # KIP-1222: keep the lock, restart its duration

#: ShareStateBatch.delivery_state, Kafka's RecordState numbers where Kafka has one
RECORD_AVAILABLE = 0
RECORD_ACQUIRED = 1  # never persisted: locks live in the leader's memory only
RECORD_ACKNOWLEDGED = 2
RECORD_ARCHIVED = 4
RECORD_DEAD_LETTER_PENDING = 5  # rillet: archived, its dead-letter write not yet confirmed


@_msg
class ShareGroupHeartbeatRequest:
    """KIP-932 heartbeat. ``member_epoch``: 0 join, current epoch, -1 leave.
    ``subscribed_topic_names`` None means unchanged since the last heartbeat (send it when
    joining). Members do not own partitions exclusively: any number may be assigned one."""

    API: ClassVar[str] = "ShareGroupHeartbeat"
    VERSION: ClassVar[int] = 0
    group_id: str
    member_id: str
    member_epoch: int
    rack_id: str | None = None
    subscribed_topic_names: tuple[str, ...] | None = None
    client_id: str = ""
    client_host: str = ""


@_msg
class ShareGroupHeartbeatResponse:
    """``assignment``: the partitions the member fetches from now (None: unchanged)."""

    API: ClassVar[str] = "ShareGroupHeartbeat"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = -1
    heartbeat_interval_ms: int = 0
    assignment: tuple[GroupTopicPartitions, ...] | None = None


@_msg
class ShareGroupDescribeRequest:
    API: ClassVar[str] = "ShareGroupDescribe"
    VERSION: ClassVar[int] = 0
    group_ids: tuple[str, ...]


@_msg
class ShareGroupDescribeResponse:
    """One ``DescribedGroup`` per id (``group_state`` "Dead" for an unknown group, error
    GROUP_ID_NOT_FOUND; INCONSISTENT_GROUP_PROTOCOL for a consumer group's id)."""

    API: ClassVar[str] = "ShareGroupDescribe"
    VERSION: ClassVar[int] = 0
    groups: tuple[DescribedGroup, ...] = ()


@_msg
class AcknowledgementBatch:
    """Offsets ``first_offset``..``last_offset`` (inclusive) acknowledged by one member:
    ``acknowledge_types`` holds one ACK_* per offset, or a single value for the whole range.
    ``delay_ms`` (rillet, ACK_RELEASE only): -1 applies the group's back-off
    (``retry.backoff.ms * retry.backoff.multiplier ** (delivery_count - 1)``, capped by
    ``retry.backoff.max.ms``, with jitter); 0 releases at once; > 0 not before that many ms.
    ``reason`` (rillet, ACK_REJECT only): carried to the dead-letter record's headers."""

    first_offset: int
    last_offset: int
    acknowledge_types: tuple[int, ...]
    delay_ms: int = -1
    reason: str = ""


@_msg
class ShareFetchPartition:
    """``acknowledgement_batches``: acknowledgements of records this member acquired earlier
    from this partition, applied before new records are acquired."""

    partition: int
    acknowledgement_batches: tuple[AcknowledgementBatch, ...] = ()


@_msg
class ShareFetchTopic:
    name: str
    partitions: tuple[ShareFetchPartition, ...]


@_msg
class ShareFetchRequest:
    """Acquire records for ``member_id`` of ``group_id`` (a long poll like Fetch: answered
    when records are acquired or ``max_wait_ms`` elapses). ``max_records``: at most this many
    acquired per partition. Rillet keeps no share session: each request lists its partitions.
    A request with ``max_records`` 0 only acknowledges. ``acquire_mode`` (KIP-1206's
    ShareAcquireMode): 0 ``batch_optimized``, ``max_records`` is soft and new records are
    acquired to the end of a stored batch; 1 ``record_limit``, at most ``max_records``."""

    API: ClassVar[str] = "ShareFetch"
    VERSION: ClassVar[int] = 0
    group_id: str
    member_id: str
    max_wait_ms: int = 500
    min_bytes: int = 1
    max_bytes: int = 52428800
    max_records: int = 500
    topics: tuple[ShareFetchTopic, ...]
    acquire_mode: int = 0


@_msg
class AcquiredRecords:
    """Offsets ``first_offset``..``last_offset`` are acquired by the member (locked for
    ``group.share.record.lock.duration.ms``), each delivered ``delivery_count`` times now."""

    first_offset: int
    last_offset: int
    delivery_count: int


@_msg
class ShareFetchPartitionResponse:
    """``records``: whole batches as stored (they may hold offsets outside the acquired
    ranges: the client delivers only ``acquired_records``). ``acknowledge_error_code``: the
    outcome of the acknowledgements sent with the request (INVALID_RECORD_STATE when one
    names a record this member does not hold; then none of that partition's is applied)."""

    partition: int
    error_code: int = 0
    error_message: str | None = None
    acknowledge_error_code: int = 0
    acknowledge_error_message: str | None = None
    leader_id: int = -1
    leader_epoch: int = -1
    records: Records = b""
    acquired_records: tuple[AcquiredRecords, ...] = ()


@_msg
class ShareFetchTopicResponse:
    name: str
    partitions: tuple[ShareFetchPartitionResponse, ...]


@_msg
class ShareFetchResponse:
    API: ClassVar[str] = "ShareFetch"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    acquisition_lock_timeout_ms: int = 0
    topics: tuple[ShareFetchTopicResponse, ...] = ()


@_msg
class ShareAcknowledgeTopic:
    name: str
    partitions: tuple[ShareFetchPartition, ...]


@_msg
class ShareAcknowledgeRequest:
    """Acknowledge without fetching (``commit_sync``/``commit_async``, close). Answered once
    the new states are durable (written to the share-state coordinator)."""

    API: ClassVar[str] = "ShareAcknowledge"
    VERSION: ClassVar[int] = 0
    group_id: str
    member_id: str
    topics: tuple[ShareAcknowledgeTopic, ...]


@_msg
class ShareAcknowledgeResponse:
    API: ClassVar[str] = "ShareAcknowledge"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    results: tuple[TopicPartitionErrors, ...] = ()


@_msg
class DescribeShareGroupOffsetsRequest:
    """Share-partition state of ``group_id`` on this leader's partitions (sent to each
    partition's leader; Kafka sends it to the group coordinator)."""

    API: ClassVar[str] = "DescribeShareGroupOffsets"
    VERSION: ClassVar[int] = 0
    group_id: str
    topics: tuple[GroupTopicPartitions, ...]


@_msg
class DeliveryCount:
    """``records`` in-flight records have been delivered ``delivery_count`` times."""

    delivery_count: int
    records: int


@_msg
class DescribedSharePartition:
    """``start_offset``: the share-partition start offset (every record below it is
    acknowledged or archived); ``end_offset``: the last offset considered + 1. ``lag``:
    records from ``start_offset`` to the high watermark not yet acknowledged or archived.
    ``delayed``: available records whose release delay has not passed yet."""

    topic: str
    partition: int
    error_code: int = 0
    error_message: str | None = None
    start_offset: int = -1
    end_offset: int = -1
    high_watermark: int = -1
    lag: int = 0
    available: int = 0
    delayed: int = 0
    acquired: int = 0
    acknowledged: int = 0
    archived: int = 0
    dead_lettered: int = 0
    delivery_counts: tuple[DeliveryCount, ...] = ()


@_msg
class DescribeShareGroupOffsetsResponse:
    API: ClassVar[str] = "DescribeShareGroupOffsets"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    partitions: tuple[DescribedSharePartition, ...] = ()


@_msg
class ShareOffset:
    partition: int
    start_offset: int


@_msg
class ShareOffsetTopic:
    name: str
    partitions: tuple[ShareOffset, ...]


@_msg
class AlterShareGroupOffsetsRequest:
    """Reset the share-partition start offset (``start_offset`` -2 earliest, -1 latest, else
    an offset); all in-flight state of the partition is dropped. Refused with
    NON_EMPTY_GROUP while a member of the group holds acquired records there. Sent to each
    partition's leader, after the admin checked the group has no members."""

    API: ClassVar[str] = "AlterShareGroupOffsets"
    VERSION: ClassVar[int] = 0
    group_id: str
    topics: tuple[ShareOffsetTopic, ...]


@_msg
class AlterShareGroupOffsetsResponse:
    API: ClassVar[str] = "AlterShareGroupOffsets"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    results: tuple[TopicPartitionErrors, ...] = ()


@_msg
class DeleteShareGroupOffsetsRequest:
    """Delete ``group_id``'s share-partition state of these partitions (``rillet share-group
    delete`` sends it to every leader after DeleteGroups). Refused like AlterShareGroupOffsets."""

    API: ClassVar[str] = "DeleteShareGroupOffsets"
    VERSION: ClassVar[int] = 0
    group_id: str
    topics: tuple[GroupTopicPartitions, ...]


@_msg
class DeleteShareGroupOffsetsResponse:
    API: ClassVar[str] = "DeleteShareGroupOffsets"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    results: tuple[TopicPartitionErrors, ...] = ()


@_msg
class ShareStateBatch:
    """Persisted state of offsets ``first_offset``..``last_offset``: a RECORD_* state (never
    ACQUIRED), the delivery count so far, ``available_at_ms`` (AVAILABLE records released
    with a delay: not redelivered before it; 0 = now) and, for DEAD_LETTER_PENDING, the
    reason to put in the dead-letter headers."""

    first_offset: int
    last_offset: int
    delivery_state: int
    delivery_count: int
    available_at_ms: int = 0
    reason: str = ""


@_msg
class ReadShareGroupStateRequest:
    """A new leader of ``topic``/``partition`` loads ``group_id``'s share-partition state."""

    API: ClassVar[str] = "ReadShareGroupState"
    VERSION: ClassVar[int] = 0
    group_id: str
    topic: str
    partition: int
    leader_epoch: int = -1


@_msg
class ReadShareGroupStateResponse:
    """``state_epoch`` 0 and ``start_offset`` -1: no state stored yet (the group starts at
    the partition's latest offset, ``share.auto.offset.reset``)."""

    API: ClassVar[str] = "ReadShareGroupState"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    state_epoch: int = 0
    leader_epoch: int = -1
    start_offset: int = -1
    state_batches: tuple[ShareStateBatch, ...] = ()


@_msg
class WriteShareGroupStateRequest:
    """The leader's new state: ``start_offset`` (every offset below it is done and forgotten)
    and the batches that changed (a delta merged over what is stored; ``replace`` True
    replaces all the batches instead). ``leader_epoch`` older than the stored one is fenced
    (FENCED_LEADER_EPOCH); ``state_epoch`` other than the stored one (a reset or delete
    happened) is fenced with FENCED_STATE_EPOCH. ``delete`` removes the state (a tombstone).
    Answered once durable (acks=all in ``__share_group_state``)."""

    API: ClassVar[str] = "WriteShareGroupState"
    VERSION: ClassVar[int] = 0
    group_id: str
    topic: str
    partition: int
    state_epoch: int
    leader_epoch: int
    start_offset: int
    state_batches: tuple[ShareStateBatch, ...] = ()
    replace: bool = False
    delete: bool = False


@_msg
class WriteShareGroupStateResponse:
    """``state_epoch``: the stored state epoch after the write (a ``replace`` with a
    ``start_offset`` reset bumps it)."""

    API: ClassVar[str] = "WriteShareGroupState"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    state_epoch: int = 0


#: the share-group requests the group coordinator answers (the others go to partition leaders)
SHARE_GROUP_REQUESTS = (ShareGroupHeartbeatRequest, ShareGroupDescribeRequest)

SHARE_REQUESTS = (
    ShareGroupHeartbeatRequest,
    ShareGroupDescribeRequest,
    ShareFetchRequest,
    ShareAcknowledgeRequest,
    DescribeShareGroupOffsetsRequest,
    AlterShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsRequest,
    ReadShareGroupStateRequest,
    WriteShareGroupStateRequest,
)
SHARE_RESPONSES = (
    ShareGroupHeartbeatResponse,
    ShareGroupDescribeResponse,
    ShareFetchResponse,
    ShareAcknowledgeResponse,
    DescribeShareGroupOffsetsResponse,
    AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsResponse,
    ReadShareGroupStateResponse,
    WriteShareGroupStateResponse,
)


# ------------------------------------------------------------------------------ BrokerCounters


@_msg
class BrokerCountersRequest:
    """The answering broker's counters (monotonic since the process started): how much work
    replication and the listeners do, for operators and tests (docs/runtime.md)."""

    API: ClassVar[str] = "BrokerCounters"
    VERSION: ClassVar[int] = 0


@_msg
class BrokerCounter:
    name: str
    value: int


@_msg
class BrokerCountersResponse:
    """``counters`` sorted by name; see docs/runtime.md for what each counts."""

    API: ClassVar[str] = "BrokerCounters"
    VERSION: ClassVar[int] = 0
    broker_id: int = -1
    counters: tuple[BrokerCounter, ...] = ()


# ------------------------------------------------------------------------------- operations
# See docs/operations.md. DeleteRecords goes to each partition's leader (like ListOffsets),
# DescribeLogDirs to each broker, ListPartitionReassignments to any (the controller best).


@_msg
class DeleteRecordsPartition:
    """``offset``: the new log start offset of the partition (every record below it is
    deleted); -1 means the high watermark (everything consumers can read)."""

    partition: int
    offset: int


@_msg
class DeleteRecordsTopic:
    name: str
    partitions: tuple[DeleteRecordsPartition, ...]


@_msg
class DeleteRecordsRequest:
    """Kafka's DeleteRecords: move the log start offset of each partition forward. Sent to
    the partition leaders; a partition this broker does not lead answers
    NOT_LEADER_OR_FOLLOWER. Answered once the leader's new log start is durable (followers
    take it from their next fetch)."""

    API: ClassVar[str] = "DeleteRecords"
    VERSION: ClassVar[int] = 0
    topics: tuple[DeleteRecordsTopic, ...]
    timeout_ms: int = 30000


@_msg
class DeleteRecordsPartitionResponse:
    """``low_watermark``: the partition's log start offset after the request (-1 on
    error). OFFSET_OUT_OF_RANGE: the offset is above the high watermark; POLICY_VIOLATION:
    the topic's cleanup.policy has no ``delete``; INVALID_TOPIC_EXCEPTION: an internal
    topic."""

    partition: int
    low_watermark: int = -1
    error_code: int = 0
    error_message: str | None = None


@_msg
class DeleteRecordsTopicResponse:
    name: str
    partitions: tuple[DeleteRecordsPartitionResponse, ...]


@_msg
class DeleteRecordsResponse:
    API: ClassVar[str] = "DeleteRecords"
    VERSION: ClassVar[int] = 0
    topics: tuple[DeleteRecordsTopicResponse, ...] = ()


@_msg
class DescribeLogDirsRequest:
    """Kafka's DescribeLogDirs, to one broker: its log directory and the replicas it hosts
    there (``topics`` null: every one; else the named topics, all their partitions here)."""

    API: ClassVar[str] = "DescribeLogDirs"
    VERSION: ClassVar[int] = 0
    topics: tuple[str, ...] | None = None


@_msg
class DescribeLogDirsPartition:
    """``size``: bytes of the replica's log segments; ``offset_lag``: Kafka's, the high
    watermark minus the log end offset when positive, else 0; ``log_start_offset`` and
    ``log_end_offset`` as the replica has them (-1: its log is not open)."""

    partition: int
    size: int
    offset_lag: int = 0
    is_future: bool = False
    log_start_offset: int = -1
    log_end_offset: int = -1


@_msg
class DescribeLogDirsTopic:
    name: str
    partitions: tuple[DescribeLogDirsPartition, ...]


@_msg
class DescribeLogDir:
    """``total_bytes`` / ``usable_bytes``: of the file system holding ``log_dir`` (-1:
    unknown)."""

    log_dir: str
    error_code: int = 0
    topics: tuple[DescribeLogDirsTopic, ...] = ()
    total_bytes: int = -1
    usable_bytes: int = -1


@_msg
class DescribeLogDirsResponse:
    API: ClassVar[str] = "DescribeLogDirs"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    broker_id: int = -1
    results: tuple[DescribeLogDir, ...] = ()


@_msg
class ListPartitionReassignmentsRequest:
    """Kafka's ListPartitionReassignments: the ongoing reassignments (``topics`` null: of
    every topic), answered from the answering broker's metadata image (the active
    controller's is the freshest)."""

    API: ClassVar[str] = "ListPartitionReassignments"
    VERSION: ClassVar[int] = 0
    topics: tuple[GroupTopicPartitions, ...] | None = None
    timeout_ms: int = 30000


@_msg
class OngoingPartitionReassignment:
    """``replicas``: the current replica set (old and new during the move); the new ones
    still copying are ``adding_replicas``, the ones to drop at the end
    ``removing_replicas``."""

    partition: int
    replicas: tuple[int, ...]
    adding_replicas: tuple[int, ...] = ()
    removing_replicas: tuple[int, ...] = ()


@_msg
class OngoingTopicReassignment:
    name: str
    partitions: tuple[OngoingPartitionReassignment, ...]


@_msg
class ListPartitionReassignmentsResponse:
    API: ClassVar[str] = "ListPartitionReassignments"
    VERSION: ClassVar[int] = 0
    error_code: int = 0
    error_message: str | None = None
    topics: tuple[OngoingTopicReassignment, ...] = ()


OPS_REQUESTS = (DeleteRecordsRequest, DescribeLogDirsRequest, ListPartitionReassignmentsRequest)
OPS_RESPONSES = (
    DeleteRecordsResponse,
    DescribeLogDirsResponse,
    ListPartitionReassignmentsResponse,
)


# ---------------------------------------------------------------------------------- registry

REQUESTS: dict[str, type] = {
    cls.API: cls
    for cls in (
        ApiVersionsRequest,
        BrokerStatsRequest,
        MetadataRequest,
        CreateTopicsRequest,
        DeleteTopicsRequest,
        CreatePartitionsRequest,
        DescribeConfigsRequest,
        AlterConfigsRequest,
        ProduceRequest,
        FetchRequest,
        ListOffsetsRequest,
        FindCoordinatorRequest,
        BrokerCountersRequest,
        *GROUP_REQUESTS,
        *CLUSTER_REQUESTS,
        *REPLICATION_REQUESTS,
        *TRANSACTION_REQUESTS,
        *SHARE_REQUESTS,
        *OPS_REQUESTS,
        *ACL_REQUESTS,
        *QUOTA_REQUESTS,
        *FEATURE_REQUESTS,
    )
}
RESPONSES: dict[str, type] = {
    cls.API: cls
    for cls in (
        ErrorResponse,
        ApiVersionsResponse,
        BrokerStatsResponse,
        MetadataResponse,
        CreateTopicsResponse,
        DeleteTopicsResponse,
        CreatePartitionsResponse,
        DescribeConfigsResponse,
        AlterConfigsResponse,
        ProduceResponse,
        FetchResponse,
        ListOffsetsResponse,
        FindCoordinatorResponse,
        BrokerCountersResponse,
        ConsumerGroupHeartbeatResponse,
        OffsetCommitResponse,
        OffsetFetchResponse,
        OffsetDeleteResponse,
        ListGroupsResponse,
        ConsumerGroupDescribeResponse,
        DeleteGroupsResponse,
        *CLUSTER_RESPONSES,
        *REPLICATION_RESPONSES,
        *TRANSACTION_RESPONSES,
        *SHARE_RESPONSES,
        *OPS_RESPONSES,
        *ACL_RESPONSES,
        *QUOTA_RESPONSES,
        *FEATURE_RESPONSES,
    )
}


# Requests a broker serves only on its inter-broker listener (docs/protocol.md, "Listeners").
# Fetch, ListOffsets and OffsetForLeaderEpoch are client APIs too: they are inter-broker only
# when they carry a replica id (``replica_id >= 0``, a follower), see ``is_inter_broker``.
INTER_BROKER_APIS: tuple[type, ...] = (
    RaftRequest,
    BrokerHeartbeatRequest,
    MetadataFetchRequest,
    AlterPartitionRequest,
    ReplicaDamageRequest,
    WriteTxnMarkersRequest,
    ReadShareGroupStateRequest,
    WriteShareGroupStateRequest,
)


def is_inter_broker(request: object) -> bool:
    """True for a request only brokers may send (refused on the client listener)."""
    if isinstance(request, INTER_BROKER_APIS):
        return True
    if isinstance(request, FetchRequest | ListOffsetsRequest | OffsetForLeaderEpochRequest):
        return request.replica_id >= 0  # what the partition treats as a follower
    return False
