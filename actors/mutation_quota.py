"""controller_mutation_rate in the broker (KIP-599; docs/security.md, "Controller mutation
rate"): the token buckets, and the gate of the topic admin requests on both listeners.

``MutationQuotas`` (one per broker, any thread) keeps a token bucket per quota entity's
tags (coordinator/mutation_quota.py), measured by the broker that receives the request
(as each broker measures the byte rates), with ``controller.quota.window.num`` and
``controller.quota.window.size.seconds``. ``costs`` gives each topic of a CreateTopics,
CreatePartitions or DeleteTopics its partitions from the broker's image; ``admit`` says which
go ahead. The KAFKA listener (actors/kafka_admin.py) answers the others
THROTTLING_QUOTA_EXCEEDED with ``throttle_time_ms`` (strict from CreateTopics v6,
CreatePartitions v3, DeleteTopics v5; older versions permissive, as Kafka);
``native_gate`` does the same for the native admin requests (always strict), whose answer
names the time to wait. A ``validate_only`` request is never counted (as Kafka).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from rillet.coordinator import mutation_quota as M
from rillet.coordinator import quotas as Q
from rillet.transport import protocol as P

from .quotas import made_once, user_of

E = P.ErrorCode
STRICT_FROM = {19: 6, 37: 3, 20: 5}  # Kafka api key -> first strict version


class MutationQuotas:
    """The broker's controller mutation buckets (thread-safe)."""

    def __init__(self, quotas: Callable[[], Q.Quotas], *, num: int = 11, window_s: int = 1,
                 clock: Callable[[], float] = lambda: time.monotonic() * 1000) -> None:
        self.quotas = quotas
        self.num = num
        self.window_s = window_s
        self.clock = clock
        self._buckets: dict[tuple[str, str], M.TokenBucket] = {}
        self._lock = threading.Lock()

    def admit(self, user: str, client_id: str, costs: Sequence[int],
              strict: bool) -> M.Admission:
        quotas = self.quotas()
        applied = Q.resolve(quotas, user, client_id, Q.CONTROLLER_MUTATION_RATE) if quotas else None
        if applied is None or not costs:
            return M.Admission((True,) * len(costs), 0)
        with self._lock:
            tags = (applied.user_tag, applied.client_tag)
            bucket = self._buckets.get(tags)
            if bucket is None:
                bucket = self._buckets[tags] = M.TokenBucket()
            return M.admit(bucket, applied.bound, self.num, self.window_s, self.clock(), costs,
                           strict)


def of(ctx) -> MutationQuotas:
    """The broker's buckets, made on first use."""
    configs = ctx.broker_configs
    return made_once(ctx, "mutation_quotas", lambda: MutationQuotas(
        lambda: ctx.image.client_quotas,
        num=int(configs.get("controller.quota.window.num", 11)),
        window_s=int(configs.get("controller.quota.window.size.seconds", 1))))


def _partitions(image, name: str) -> int:
    topic = image.topics.get(name)
    return len(topic.partitions) if topic is not None else 0


def costs(ctx, request: Any) -> list[tuple[str, int]]:
    """(topic, partitions created or deleted) of a native topic admin request, in order."""
    image = ctx.image
    match request:
        case P.CreateTopicsRequest():
            default = int(ctx.broker_configs.get("num.partitions", 1))
            return [(t.name, t.num_partitions if t.num_partitions > 0 else default)
                    for t in request.topics]
        case P.CreatePartitionsRequest():
            return [(t.name, max(0, t.count - _partitions(image, t.name)))
                    for t in request.topics]
        case P.DeleteTopicsRequest():
            return [(n, _partitions(image, n)) for n in request.topic_names]
    return []


def message(throttle_ms: int) -> str:
    return (f"The throttling quota has been exceeded (controller_mutation_rate): retry "
            f"after {throttle_ms} ms")


def admit(ctx, principal: str, client_id: str, request: Any,
          strict: bool) -> tuple[dict[str, tuple[int, str]], int]:
    """The topics of ``request`` refused by the quota (name -> (code, message)) and the
    throttle (ms) the answer carries. Nothing is counted without a quota or for
    validate_only."""
    if not getattr(getattr(ctx, "image", None), "client_quotas", None):
        return {}, 0
    if getattr(request, "validate_only", False):
        return {}, 0
    items = costs(ctx, request)
    verdict = of(ctx).admit(user_of(principal), client_id, [c for _, c in items], strict)
    refused = {name: (E.THROTTLING_QUOTA_EXCEEDED, message(verdict.throttle_ms))
               for (name, _), ok in zip(items, verdict.admitted, strict=True) if not ok}
    return refused, verdict.throttle_ms


def without(request: Any, refused: dict) -> Any:
    """``request`` less the refused topics (None: nothing left)."""
    match request:
        case P.CreateTopicsRequest() | P.CreatePartitionsRequest():
            kept = tuple(t for t in request.topics if t.name not in refused)
            return replace(request, topics=kept) if kept else None
        case P.DeleteTopicsRequest():
            kept = tuple(n for n in request.topic_names if n not in refused)
            return replace(request, topic_names=kept) if kept else None
    return request


def _merged(request: Any, response: Any, refused: dict) -> Any:
    """The controller's ``response`` with the refused topics' results added."""
    if isinstance(response, P.ErrorResponse):
        return response  # the whole request failed: that is the answer
    if isinstance(request, P.CreateTopicsRequest):
        extra = tuple(P.CreatableTopicResult(name=n, error_code=c, error_message=m)
                      for n, (c, m) in refused.items())
        got = response.topics if isinstance(response, P.CreateTopicsResponse) else ()
        return P.CreateTopicsResponse(topics=tuple(got) + extra)
    extra = tuple(P.TopicResult(name=n, error_code=c, error_message=m)
                  for n, (c, m) in refused.items())
    got = getattr(response, "results", ())
    cls = type(response) if isinstance(response, P.DeleteTopicsResponse
                                        | P.CreatePartitionsResponse) else (
        P.DeleteTopicsResponse if isinstance(request, P.DeleteTopicsRequest)
        else P.CreatePartitionsResponse)
    return cls(results=tuple(got) + extra)


def native_gate(ctx, principal: str, client_id: str, request: Any,
                respond: Callable[[Any], None]) -> tuple[Any, Callable[[Any], None]]:
    """A native client session's topic admin request through the quota (always strict):
    (what still goes to the controller or None, the respond that adds the refusals)."""
    refused, _ms = admit(ctx, principal, client_id, request, strict=True)
    if not refused:
        return request, respond
    kept = without(request, refused)
    if kept is None:
        respond(_merged(request, None, refused))
        return None, respond
    return kept, lambda r: respond(_merged(request, r, refused))
