"""Client errors: one hierarchy, one place that maps wire error codes to exception types.

Every error carries ``code`` (the wire ``ErrorCode`` number, Kafka's where one exists, -1 when
the error is local to the client) and ``retriable`` (whether the same request may succeed if
sent again later, e.g. after a metadata refresh). The producer retries retriable errors until
``delivery.timeout.ms``; everything else reaches the user as raised here.
"""

from __future__ import annotations

from rillet.transport import protocol as _P  # the one table of codes and their retriability


class RilletError(Exception):
    """Base of every error the client raises. ``code`` and ``retriable`` describe it."""

    code: int = -1
    retriable: bool = False

    def __init__(self, message: str = "", *, code: int | None = None,
                 retriable: bool | None = None) -> None:
        super().__init__(message or self.default_message())
        if code is not None:
            self.code = code
        if retriable is not None:
            self.retriable = retriable

    @classmethod
    def default_message(cls) -> str:
        return cls.__doc__.strip().splitlines()[0] if cls.__doc__ else cls.__name__


# --- local (client-side) errors -------------------------------------------------------------


class ConfigError(RilletError, ValueError):
    """Invalid client configuration (unknown key, wrong type or value)."""


class AuthenticationFailedError(RilletError):
    """The broker refused this client's credentials (docs/security.md; not retriable)."""

    code = 58  # Kafka's SASL_AUTHENTICATION_FAILED


class IllegalStateError(RilletError):
    """The client is not in a state that allows this call (closed, partition not assigned, ...)."""


class ProducerClosedError(IllegalStateError):
    """The producer is closed; no more records can be sent."""


class ConsumerClosedError(IllegalStateError):
    """The consumer is closed."""


class RilletTimeoutError(RilletError, TimeoutError):
    """The operation did not complete in time."""

    retriable = True


class DeliveryTimeoutError(RilletTimeoutError):
    """The record was not acknowledged within delivery.timeout.ms."""


class NoBrokersAvailableError(RilletError):
    """None of the bootstrap brokers could be reached."""

    retriable = True


class BrokerUnavailableError(RilletError):
    """A broker did not answer (down, unreachable, or the connection timed out)."""

    retriable = True


class NoOffsetForPartitionError(RilletError):
    """No position for the partition and auto.offset.reset is 'none'."""


class SerializationError(RilletError):
    """A key or value is not bytes (or None) after serialisation."""


class CommitFailedError(RilletError):
    """The offsets could not be committed: this consumer is no longer a member of the group
    (fenced, timed out or left); its partitions were reassigned."""


class GroupMembershipError(RilletError):
    """The group refused this consumer for good (fenced instance id, bad regex, unsupported
    assignor, group full); see the message."""


# --- transactions (docs/transactions.md, "Client") -------------------------------------------


class TransactionAbortedError(RilletError):
    """The record was not written: its transaction was aborted (abort_transaction() dropped it
    before it was sent, or the transaction had already failed)."""


class TransactionAbortableError(RilletError):
    """The current transaction failed (see ``__cause__``): call abort_transaction(), then a
    new transaction may begin. Every other transactional call raises this until then."""


class TransactionalIdNotFoundError(RilletError):
    """The transaction coordinator does not know this producer's transactional id (expired?)."""

    code = 105


# --- errors returned by brokers (code != -1 means it came over the wire) ---------------------


class UnknownServerError(RilletError):
    """The broker hit an unexpected error."""

    code = -1


class OffsetOutOfRangeError(RilletError):
    """The requested offset is outside the partition's [log_start_offset, log_end_offset]."""

    code = 1


class CorruptMessageError(RilletError):
    """A record batch failed validation (digest, length or counts)."""

    code = 2
    retriable = True


class UnknownTopicOrPartitionError(RilletError):
    """The topic or partition does not exist on this broker."""

    code = 3
    retriable = True


class LeaderNotAvailableError(RilletError):
    """The partition has no leader right now (an election is in progress)."""

    code = 5
    retriable = True


class NotLeaderOrFollowerError(RilletError):
    """The broker is not the leader of the partition; metadata is stale."""

    code = 6
    retriable = True


class RequestTimedOutError(RilletTimeoutError):
    """The request timed out on the broker or in flight."""

    code = 7
    retriable = True


class MessageTooLargeError(RilletError):
    """The request or batch is larger than the broker accepts (message.max.bytes)."""

    code = 10


class NotCoordinatorError(RilletError):
    """The broker is not the coordinator of this group."""

    code = 16
    retriable = True


class InvalidTopicError(RilletError):
    """The topic name is invalid."""

    code = 17


class RecordListTooLargeError(RilletError):
    """The produce request exceeds the configured segment or request size."""

    code = 18


class NotEnoughReplicasError(RilletError):
    """Fewer in-sync replicas than min.insync.replicas."""

    code = 19
    retriable = True


class NotEnoughReplicasAfterAppendError(RilletError):
    """Written, but fewer in-sync replicas than min.insync.replicas acknowledged it."""

    code = 20
    retriable = True


class UnsupportedVersionError(RilletError):
    """The broker does not support this API version."""

    code = 35


class TopicAlreadyExistsError(RilletError):
    """The topic already exists."""

    code = 36


class InvalidPartitionsError(RilletError):
    """The number of partitions is invalid."""

    code = 37


class InvalidReplicationFactorError(RilletError):
    """The replication factor is invalid (larger than the number of brokers?)."""

    code = 38


class InvalidReplicaAssignmentError(RilletError):
    """The replica assignment is invalid."""

    code = 39


class InvalidConfigError(RilletError):
    """The topic configuration is invalid."""

    code = 40


class InvalidRequestError(RilletError):
    """The broker rejected the request as malformed."""

    code = 42


class PolicyViolationError(RilletError):
    """The request violates a broker policy."""

    code = 44


class OutOfOrderSequenceError(RilletError):
    """The broker received an out-of-order sequence number."""

    code = 45


class DuplicateSequenceError(RilletError):
    """The broker already has a batch with this sequence number."""

    code = 46


class KafkaStorageError(RilletError):
    """The broker's log for this partition is offline (disk error)."""

    code = 56
    retriable = True


class InvalidProducerEpochError(RilletError):
    """The producer's epoch is older than the one the partition or coordinator knows."""

    code = 47


class InvalidTxnStateError(IllegalStateError):
    """The call is not legal in the transaction's current state (send() outside a transaction,
    commit without begin, ...), or the broker found the transaction in another state."""

    code = 48


class InvalidProducerIdMappingError(RilletError):
    """The producer id does not belong to this transactional id (the coordinator gave it to
    another instance)."""

    code = 49


class InvalidTransactionTimeoutError(RilletError):
    """transaction.timeout.ms exceeds the broker's transaction.max.timeout.ms (or is not > 0)."""

    code = 50


class TransactionCoordinatorFencedError(RilletError):
    """A newer transaction coordinator took over the transactional id."""

    code = 52


class ProducerFencedError(RilletError):
    """A newer producer instance with the same transactional.id exists (it called
    init_transactions() after this one): this producer can only be closed. Fatal."""

    code = 90


class TransactionTimeoutError(ProducerFencedError):
    """The transaction outlived transaction.timeout.ms: the coordinator aborted it and fenced
    this producer (a ProducerFencedError whose cause is the timeout). Fatal."""


class FencedLeaderEpochError(RilletError):
    """The leader epoch in the request is older than the broker's."""

    code = 74
    retriable = True


class UnknownLeaderEpochError(RilletError):
    """The leader epoch in the request is newer than the broker's."""

    code = 75
    retriable = True


class AuthorizationError(RilletError):
    """The principal's ACLs do not allow the request (docs/security.md; not retriable:
    an administrator must add an ACL first)."""


class TopicAuthorizationFailedError(AuthorizationError):
    code = 29


class GroupAuthorizationFailedError(AuthorizationError):
    code = 30


class ClusterAuthorizationFailedError(AuthorizationError):
    code = 31


class TransactionalIdAuthorizationFailedError(AuthorizationError):
    code = 53


class SecurityDisabledError(RilletError):
    """An ACL request to a cluster that runs no authorizer (authorizer.class.name)."""

    code = 54


class ThrottlingQuotaExceededError(RilletError):
    """A controller_mutation_rate quota (docs/security.md): the topics named were not
    created or deleted; the message says how long to wait before asking again."""

    code = 89
    retriable = True


_BY_CODE: dict[int, type[RilletError]] = {
    cls.code: cls
    for cls in (
        OffsetOutOfRangeError, CorruptMessageError, UnknownTopicOrPartitionError,
        LeaderNotAvailableError, NotLeaderOrFollowerError, RequestTimedOutError,
        MessageTooLargeError, NotCoordinatorError, InvalidTopicError, RecordListTooLargeError,
        NotEnoughReplicasError, NotEnoughReplicasAfterAppendError, UnsupportedVersionError,
        TopicAlreadyExistsError, InvalidPartitionsError, InvalidReplicationFactorError,
        InvalidReplicaAssignmentError, InvalidConfigError, InvalidRequestError,
        PolicyViolationError, OutOfOrderSequenceError, DuplicateSequenceError, KafkaStorageError,
        FencedLeaderEpochError, UnknownLeaderEpochError, InvalidProducerEpochError,
        InvalidTxnStateError, InvalidProducerIdMappingError, InvalidTransactionTimeoutError,
        TransactionCoordinatorFencedError, ProducerFencedError,
        TransactionalIdNotFoundError,
        TopicAuthorizationFailedError, GroupAuthorizationFailedError,
        ClusterAuthorizationFailedError, TransactionalIdAuthorizationFailedError,
        SecurityDisabledError, ThrottlingQuotaExceededError,
    )
}


def error_for_code(code: int, message: str | None = None) -> RilletError:
    """The exception for a wire error code (``ErrorCode`` or its int); the broker's message wins."""
    code = int(code)
    cls = _BY_CODE.get(code)
    if cls is not None:
        return cls(message or "")
    name = _code_name(code)
    text = f"{name}: {message}" if message else name
    return RilletError(text, code=code, retriable=_P.retriable(code))


def _code_name(code: int) -> str:
    try:
        return _P.ErrorCode(code).name
    except ValueError:  # an unknown number still gets a readable message
        return f"error code {code}"
