"""Consumer-group membership (KIP-848 style), the pure assignors, and committed offsets.

Entry point: :class:`GroupCoordinator` (pure functions over a :class:`CoordinatorState`);
records for ``__consumer_offsets`` and :func:`replay` in :mod:`.records`; offsets committed
in transactions (KIP-447) and :func:`replay_log` over batches and markers in
:mod:`.txn_offsets`; errors in :mod:`.errors`. Standard library only. See docs/groups.md.
"""

from .assignors import ASSIGNORS, MemberSubscription, range_assign, uniform_assign
from .coordinator import GroupCoordinator
from .messages import (
    CommitOffset,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
    ExpiredMember,
    GroupDescription,
    GroupListing,
    MemberDescription,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    Result,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from .model import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerGroupMember,
    CoordinatorState,
    GroupConfig,
    GroupState,
    MemberState,
    OffsetAndMetadata,
    PendingOffset,
    TopicPartition,
    TxnProducer,
)
from .records import from_kv, replay, replay_kv, to_kv
from .subscriptions import resolve_topics, subscribed_topics
from .txn_offsets import LogBatch, LogMarker, replay_log

__all__ = [
    "ASSIGNORS", "LEAVE_GROUP_MEMBER_EPOCH", "LEAVE_GROUP_STATIC_MEMBER_EPOCH", "CommitOffset",
    "ConsumerGroup", "ConsumerGroupHeartbeatRequest", "ConsumerGroupHeartbeatResponse",
    "ConsumerGroupMember", "CoordinatorState", "ExpiredMember", "GroupConfig",
    "GroupCoordinator", "GroupDescription", "GroupListing", "GroupState", "LogBatch",
    "LogMarker", "MemberDescription",
    "MemberState", "MemberSubscription", "OffsetAndMetadata", "OffsetCommitRequest",
    "OffsetCommitResponse", "OffsetDeleteResponse", "OffsetFetchRequest", "OffsetFetchResponse",
    "PendingOffset", "Result", "TopicPartition", "TxnOffsetCommitRequest",
    "TxnOffsetCommitResponse", "TxnProducer", "from_kv", "range_assign", "replay", "replay_kv",
    "replay_log",
    "resolve_topics", "subscribed_topics", "to_kv", "uniform_assign",
]
