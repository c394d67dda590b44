"""A broker process whose share-state persister keeps the state in memory (tests only): the
share-partition leader's behaviour on a real broker before a share-state coordinator exists.
The state lives as long as the process (a restart or a kill -9 loses it: failover tests run
on the real coordinator). Everything else is the real broker (``python -m rillet.actors.node``).

    python -m tests.integration.share_memory_broker --broker-id 1 ... (node.py's arguments)
"""

from __future__ import annotations

import sys
import threading

from rillet.actors import node
from rillet.transport import protocol as P

E = P.ErrorCode


class InMemorySharePersister:
    """Tests: the share-state coordinator's contract, in a dict (answers at once, on the
    caller's thread). Merges deltas, drops batches below the start offset, fences stale
    leader epochs and state epochs like the real one."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str, int], dict] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def read(self, group_id, topic, partition, leader_epoch, answer) -> None:
        with self._lock:
            s = self.states.get((group_id, topic, partition))
            if s is not None and leader_epoch > s["leader_epoch"]:
                s["leader_epoch"] = leader_epoch
        if s is None:
            answer(P.ReadShareGroupStateResponse())
            return
        answer(P.ReadShareGroupStateResponse(
            state_epoch=s["state_epoch"], leader_epoch=s["leader_epoch"],
            start_offset=s["start_offset"], state_batches=tuple(s["batches"])))

    def write(self, request, answer) -> None:
        key = (request.group_id, request.topic, request.partition)
        with self._lock:
            self.writes += 1
            s = self.states.get(key)
            if request.delete:
                self.states.pop(key, None)
                answer(P.WriteShareGroupStateResponse())
                return
            if s is not None and request.leader_epoch < s["leader_epoch"]:
                answer(P.WriteShareGroupStateResponse(error_code=E.FENCED_LEADER_EPOCH))
                return
            if s is not None and request.state_epoch != s["state_epoch"] and not (
                request.replace
            ):
                answer(P.WriteShareGroupStateResponse(error_code=E.FENCED_STATE_EPOCH))
                return
            if s is None or request.replace:
                epoch = (s["state_epoch"] + 1) if s is not None else max(request.state_epoch, 1)
                s = {"state_epoch": epoch, "batches": []}
                self.states[key] = s
            s["leader_epoch"] = request.leader_epoch
            s["start_offset"] = request.start_offset
            merged = {}
            for b in s["batches"]:
                for o in range(b.first_offset, b.last_offset + 1):
                    merged[o] = b
            for b in request.state_batches:
                for o in range(b.first_offset, b.last_offset + 1):
                    merged[o] = b
            out: list[P.ShareStateBatch] = []
            for o in sorted(k for k in merged if k >= request.start_offset):
                b = merged[o]
                if out and out[-1].last_offset + 1 == o and _same(out[-1], b):
                    out[-1] = _with_last(out[-1], o)
                else:
                    out.append(_with_range(b, o, o))
            s["batches"] = out
            answer(P.WriteShareGroupStateResponse(state_epoch=s["state_epoch"]))


def _same(a: P.ShareStateBatch, b: P.ShareStateBatch) -> bool:
    return (a.delivery_state, a.delivery_count, a.available_at_ms, a.reason) == (
        b.delivery_state, b.delivery_count, b.available_at_ms, b.reason)


def _with_range(b: P.ShareStateBatch, first: int, last: int) -> P.ShareStateBatch:
    return P.ShareStateBatch(first_offset=first, last_offset=last,
                             delivery_state=b.delivery_state, delivery_count=b.delivery_count,
                             available_at_ms=b.available_at_ms, reason=b.reason)


def _with_last(b: P.ShareStateBatch, last: int) -> P.ShareStateBatch:
    return _with_range(b, b.first_offset, last)


if __name__ == "__main__":
    node.ShareStateClient = lambda *args, **kwargs: InMemorySharePersister()
    sys.exit(node.main())
