"""Typed errors of the group coordinator core, with Kafka's names and wire codes.

Every handler of :mod:`rillet.coordinator.groups.coordinator` either returns a ``Result``
or raises one of these; when it raises, nothing changed (the state is immutable and no
record was produced). The hosting actor maps ``err.code`` onto its ``ErrorCode`` reply and
``err.retriable`` tells the client whether to retry the same request unchanged.

``IllegalTransition`` is different: it means the core itself tried to break one of its own
invariants (a bug). The actor answers UNKNOWN_SERVER_ERROR and keeps the old state.
"""

from __future__ import annotations


class GroupError(Exception):
    """Base of every group-coordinator error. ``code`` is Kafka's numeric error code."""

    code: int = -1
    name: str = "UNKNOWN_SERVER_ERROR"
    retriable: bool = False

    def __init__(self, message: str, *, group_id: str = "", member_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.group_id = group_id
        self.member_id = member_id

    def __str__(self) -> str:
        where = f" (group={self.group_id!r}" if self.group_id else ""
        if where and self.member_id:
            where += f", member={self.member_id!r}"
        return f"{self.name}: {self.message}{where + ')' if where else ''}"


class OffsetMetadataTooLargeError(GroupError):
    code, name = 12, "OFFSET_METADATA_TOO_LARGE"


class IllegalGenerationError(GroupError):
    code, name = 22, "ILLEGAL_GENERATION"


class InconsistentGroupProtocolError(GroupError):
    """The group id is used by a group of the other type (consumer vs share, KIP-932)."""

    code, name = 23, "INCONSISTENT_GROUP_PROTOCOL"


class InvalidGroupIdError(GroupError):
    code, name = 24, "INVALID_GROUP_ID"


class UnknownMemberIdError(GroupError):
    """The member is not (or no longer) in the group: drop all partitions, rejoin with epoch 0."""

    code, name = 25, "UNKNOWN_MEMBER_ID"


class InvalidRequestError(GroupError):
    code, name = 42, "INVALID_REQUEST"


class NonEmptyGroupError(GroupError):
    code, name = 68, "NON_EMPTY_GROUP"


class GroupIdNotFoundError(GroupError):
    code, name = 69, "GROUP_ID_NOT_FOUND"


class GroupMaxSizeReachedError(GroupError):
    code, name = 81, "GROUP_MAX_SIZE_REACHED"


class FencedInstanceIdError(GroupError):
    """Another member now holds this group.instance.id: this process is a zombie."""

    code, name = 82, "FENCED_INSTANCE_ID"


class UnstableOffsetCommitError(GroupError):
    """An open transaction holds an offset of the partition (OffsetFetch with
    require_stable, KIP-447): retry once the transaction has ended."""

    code, name = 88, "UNSTABLE_OFFSET_COMMIT"
    retriable = True


class ProducerFencedError(GroupError):
    """A TxnOffsetCommit from an older epoch of a producer: a newer instance fenced it."""

    code, name = 90, "PRODUCER_FENCED"


class GroupSubscribedToTopicError(GroupError):
    code, name = 86, "GROUP_SUBSCRIBED_TO_TOPIC"


class FencedMemberEpochError(GroupError):
    """The member epoch is fenced: abandon all partitions and rejoin with epoch 0."""

    code, name = 110, "FENCED_MEMBER_EPOCH"


class UnreleasedInstanceIdError(GroupError):
    """The instance id is still used by an active member, which must leave first."""

    code, name = 111, "UNRELEASED_INSTANCE_ID"


class UnsupportedAssignorError(GroupError):
    code, name = 112, "UNSUPPORTED_ASSIGNOR"


class StaleMemberEpochError(GroupError):
    """The epoch in an OffsetCommit/OffsetFetch is not the member's current one; heartbeat, retry."""

    code, name = 113, "STALE_MEMBER_EPOCH"


class InvalidRegularExpressionError(GroupError):
    code, name = 128, "INVALID_REGULAR_EXPRESSION"


class IllegalTransition(GroupError):
    """The core attempted a transition its tables forbid (a bug; the state is left unchanged)."""

    code, name = -1, "UNKNOWN_SERVER_ERROR"


ERRORS_BY_CODE: dict[int, type[GroupError]] = {
    cls.code: cls
    for cls in (
        OffsetMetadataTooLargeError,
        IllegalGenerationError,
        InconsistentGroupProtocolError,
        InvalidGroupIdError,
        UnknownMemberIdError,
        InvalidRequestError,
        NonEmptyGroupError,
        GroupIdNotFoundError,
        GroupMaxSizeReachedError,
        FencedInstanceIdError,
        UnstableOffsetCommitError,
        ProducerFencedError,
        GroupSubscribedToTopicError,
        FencedMemberEpochError,
        UnreleasedInstanceIdError,
        UnsupportedAssignorError,
        StaleMemberEpochError,
        InvalidRegularExpressionError,
    )
}
"""Kafka error code -> exception class, for clients that turn a wire error back into a type."""


# Errors of the classic (JoinGroup/SyncGroup) protocol, see :mod:`.classic`.


class InvalidSessionTimeoutError(GroupError):
    code, name = 26, "INVALID_SESSION_TIMEOUT"


class RebalanceInProgressError(GroupError):
    """The group is rebalancing: rejoin (JoinGroup) before syncing or committing."""

    code, name = 27, "REBALANCE_IN_PROGRESS"


class MemberIdRequiredError(GroupError):
    """JoinGroup v4+ without a member id: retry at once with the member id in the reply."""

    code, name = 79, "MEMBER_ID_REQUIRED"


ERRORS_BY_CODE.update({cls.code: cls for cls in (
    InvalidSessionTimeoutError, RebalanceInProgressError, MemberIdRequiredError)})
