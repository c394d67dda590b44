"""Creating an internal topic on a coordinator's first use (actors/internal_topics.py): the
replication factor is capped at the registered brokers, not at the unfenced ones, so a
cluster whose last broker is still fenced when the first FindCoordinator arrives does not get
a topic with one replica fewer (which a single broker's death then makes unwritable)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rillet.actors import group_locate, share_state_wire, txn_wire
from rillet.coordinator.metadata import BrokerInfo, MetadataImage
from rillet.transport import protocol as P

pytestmark = pytest.mark.timeout(30)
E = P.ErrorCode


class Controller:
    def __init__(self) -> None:
        self.asked: list[P.CreateTopicsRequest] = []

    def tell(self, admin) -> None:
        self.asked.append(admin.request)


def ctx_with(fenced: dict[int, bool]) -> SimpleNamespace:
    image = MetadataImage(brokers={b: BrokerInfo(broker_id=b, host="h", port=b, fenced=f)
                                   for b, f in fenced.items()})
    return SimpleNamespace(image=image, controller=Controller(), broker_configs={})


@pytest.mark.parametrize("find, key_type, key", [
    (group_locate.find_coordinator, 0, "g"),
    (txn_wire.find_coordinator, 1, "tx"),
    (share_state_wire.find_coordinator, 2, "g:t:0"),
])
def test_a_fenced_broker_still_counts_towards_the_replication_factor(find, key_type, key):
    ctx = ctx_with({1: False, 2: False, 3: True})  # broker 3 registered, not yet unfenced
    r = find(ctx, P.FindCoordinatorRequest(key=key, key_type=key_type))
    assert r.error_code == E.COORDINATOR_NOT_AVAILABLE  # retried until the topic exists
    (create,) = ctx.controller.asked
    (topic,) = create.topics
    assert topic.replication_factor == 3, topic
    assert topic.configs.get("min.insync.replicas", "2") == "2"

    one = ctx_with({1: False})  # a one-broker cluster still gets its topic
    find(one, P.FindCoordinatorRequest(key=key, key_type=key_type))
    assert one.controller.asked[0].topics[0].replication_factor == 1
