"""Subscriptions: which topics a member subscribes to, and heartbeat validation.

Topic names and regexes come from heartbeats; the metadata image (topic name -> partition
count) comes from the controller through the actor. Regexes are Python ``re`` patterns
matched with ``fullmatch``; internal topics (``__`` prefix) never match a regex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .assignors import ASSIGNORS
from .errors import InvalidRegularExpressionError, InvalidRequestError, UnsupportedAssignorError
from .messages import ConsumerGroupHeartbeatRequest
from .model import (
    JOIN_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroupMember,
    is_int,
    valid_partition,
)

INTERNAL_TOPIC_PREFIX = "__"


def resolve_topics(member: ConsumerGroupMember, topics: Mapping[str, int]) -> frozenset[str]:
    """The existing topics (keys of ``topics``) a member subscribes to by name or regex."""
    out = {t for t in member.subscribed_topic_names if t in topics}
    if member.subscribed_topic_regex:
        out.update(_regex_topics(member.subscribed_topic_regex, topics))
    return frozenset(out)


def _regex_topics(regex: str, topics: Iterable[str]) -> set[str]:
    pattern = re.compile(regex)
    return {t for t in topics if not t.startswith(INTERNAL_TOPIC_PREFIX) and pattern.fullmatch(t)}


def subscribed_topics(
    members: Iterable[ConsumerGroupMember], topics: Mapping[str, int]
) -> dict[str, int]:
    """Subscription metadata of a group: every existing topic some member subscribes to.
    Each distinct regex is matched once, however many members share it."""
    names: set[str] = set()
    regexes: set[str] = set()
    for topic_names, regex in {(m.subscribed_topic_names, m.subscribed_topic_regex)
                               for m in members}:
        names.update(topic_names)
        if regex:
            regexes.add(regex)
    found = {t for t in names if t in topics}
    for regex in sorted(regexes):
        found |= _regex_topics(regex, topics)
    return {t: topics[t] for t in sorted(found)}


def validate_heartbeat(req: ConsumerGroupHeartbeatRequest) -> None:
    """Reject a malformed heartbeat with a typed error before anything is looked at."""
    def bad(msg: str) -> InvalidRequestError:
        return InvalidRequestError(msg, group_id=req.group_id, member_id=req.member_id)

    if not req.group_id:
        raise bad("group_id must not be empty")
    if not req.member_id:
        raise bad("member_id must not be empty (the client generates a UUID)")
    if req.instance_id is not None and not req.instance_id:
        raise bad("instance_id must be null or non-empty")
    if not is_int(req.member_epoch):
        raise bad("member_epoch must be an integer")
    if req.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        raise bad(f"invalid member_epoch {req.member_epoch}")
    if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH and req.instance_id is None:
        raise bad("member_epoch -2 (static leave) needs an instance_id")
    if req.member_epoch == JOIN_GROUP_MEMBER_EPOCH:
        if req.rebalance_timeout_ms <= 0:
            raise bad("rebalance_timeout_ms must be given when joining")
        if req.subscribed_topic_names is None and not req.subscribed_topic_regex:
            raise bad("subscribed_topic_names or subscribed_topic_regex must be given "
                      "when joining")
        if req.owned_partitions:
            raise bad("owned_partitions must be empty when joining")
    if req.owned_partitions is not None and not all(
        valid_partition(tp) for tp in req.owned_partitions
    ):
        raise bad("owned_partitions has an invalid topic partition")
    if req.subscribed_topic_names is not None and not all(
        isinstance(t, str) and t for t in req.subscribed_topic_names
    ):
        raise bad("subscribed_topic_names must be non-empty strings")
    for name in ("subscribed_topic_regex", "server_assignor", "rack_id"):
        if not isinstance(getattr(req, name), str | None):
            raise bad(f"{name} must be a string or null")
    if not isinstance(req.client_id, str) or not isinstance(req.client_host, str):
        raise bad("client_id and client_host must be strings")
    if not isinstance(req.rebalance_timeout_ms, int):
        raise bad("rebalance_timeout_ms must be an integer")
    if not is_int(req.max_wait_ms) or req.max_wait_ms < 0:
        raise bad("max_wait_ms must be an integer >= 0")
    if req.subscribed_topic_regex:
        try:
            re.compile(req.subscribed_topic_regex)
        except re.error as exc:
            raise InvalidRegularExpressionError(
                f"{req.subscribed_topic_regex!r}: {exc}", group_id=req.group_id,
                member_id=req.member_id,
            ) from exc
    if req.server_assignor is not None and req.server_assignor not in ASSIGNORS:
        raise UnsupportedAssignorError(
            f"{req.server_assignor!r} is not one of {sorted(ASSIGNORS)}",
            group_id=req.group_id, member_id=req.member_id,
        )
