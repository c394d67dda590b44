"""A tiny driver for the group coordinator core: keeps the state and the emitted log."""

from __future__ import annotations

from rillet.coordinator.groups import (
    ConsumerGroupHeartbeatRequest,
    CoordinatorState,
    GroupConfig,
    GroupCoordinator,
    TopicPartition,
)
from rillet.coordinator.groups.records import from_kv, replay, to_kv

TP = TopicPartition


def tps(spec: str) -> frozenset[TopicPartition]:
    """'t:0,1 u:2' -> {t-0, t-1, u-2}."""
    out = set()
    for part in spec.split():
        topic, ps = part.split(":")
        out.update(TopicPartition(topic, int(p)) for p in ps.split(","))
    return frozenset(out)


class Harness:
    def __init__(self, topics: dict[str, int] | None = None, **config) -> None:
        self.gc = GroupCoordinator(GroupConfig(**config))
        self.state = CoordinatorState()
        self.topics = dict(topics or {"t": 4})
        self.log: list = []
        self.now = 0

    def run(self, result):
        self.state = result.state
        self.log.extend(result.records)
        return result.response

    def hb(self, member_id: str, epoch: int, owned=None, group_id: str = "g", **kw):
        if epoch == 0:
            kw.setdefault("rebalance_timeout_ms", 10_000)
            if "subscribed_topic_regex" not in kw:
                kw.setdefault("subscribed_topic_names", ("t",))
        req = ConsumerGroupHeartbeatRequest(
            group_id=group_id, member_id=member_id, member_epoch=epoch,
            owned_partitions=owned, **kw,
        )
        return self.run(self.gc.heartbeat(self.state, req, self.topics, self.now))

    def join(self, member_id: str, **kw):
        return self.hb(member_id, 0, **kw)

    def ack(self, resp, **kw):
        """Heartbeat again owning exactly what the last response assigned."""
        return self.hb(resp.member_id, resp.member_epoch, owned=resp.assignment, **kw)

    def tick(self, now: int):
        self.now = now
        return self.run(self.gc.tick(self.state, now))

    def group(self, group_id: str = "g"):
        return self.state.groups[group_id]

    def member(self, member_id: str, group_id: str = "g"):
        return self.state.groups[group_id].members[member_id]

    def replayed(self):
        return replay(from_kv(*to_kv(r)) for r in self.log)

    def assert_no_double_ownership(self) -> None:
        for group in self.state.groups.values():
            seen: dict = {}
            for m in group.members.values():
                for tp in m.owned:
                    assert tp not in seen, f"{tp} owned by {seen[tp]} and {m.member_id}"
                    seen[tp] = m.member_id
