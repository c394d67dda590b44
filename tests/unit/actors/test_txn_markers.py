"""The transaction coordinator's marker sender (actors/txn_markers.py) with a fake send:
markers grouped by partition leader, retried with backoff or at once when the leader moves,
done on NONE / deleted / newer epoch, the whole effect dropped when a newer coordinator
fenced this one."""

from __future__ import annotations

from rillet.actors import txn_markers as M
from rillet.coordinator.metadata import BrokerInfo, MetadataImage, PartitionInfo, TopicInfo
from rillet.coordinator.transactions import TopicPartition, WriteTxnMarkers
from rillet.transport import protocol as P

E = P.ErrorCode


def image(leaders: dict[tuple[str, int], int], fenced: tuple[int, ...] = ()) -> MetadataImage:
    topics: dict[str, dict[int, PartitionInfo]] = {}
    for (topic, p), leader in leaders.items():
        topics.setdefault(topic, {})[p] = PartitionInfo(
            partition=p, replicas=(1, 2, 3), isr=(1, 2, 3), leader=leader, leader_epoch=0)
    return MetadataImage(
        brokers={b: BrokerInfo(broker_id=b, host="h", port=b, fenced=b in fenced)
                 for b in (1, 2, 3)},
        topics={t: TopicInfo(name=t, topic_id=t, partitions=ps) for t, ps in topics.items()})


def effect(*tps: tuple[str, int], commit: bool = True) -> WriteTxnMarkers:
    return WriteTxnMarkers("app", 7, 3, 5, commit, tuple(TopicPartition(*tp) for tp in tps))


def answer(token: M.MarkerToken, code: int, pid: int = 7) -> P.WriteTxnMarkersResponse:
    by_topic: dict[str, list] = {}
    for tp in token.partitions:
        by_topic.setdefault(tp.topic, []).append(P.PartitionError(partition=tp.partition,
                                                                   error_code=code))
    return P.WriteTxnMarkersResponse(markers=(P.WritableTxnMarkerResult(
        producer_id=pid, topics=tuple(P.TopicPartitionErrors(name=t, partitions=tuple(ps))
                                      for t, ps in by_topic.items())),))


class FakeSend:
    def __init__(self) -> None:
        self.sent: list[tuple[int, P.WriteTxnMarkersRequest, M.MarkerToken]] = []

    def __call__(self, leader, request, token) -> None:
        self.sent.append((leader, request, token))

    def take(self) -> list[tuple[int, P.WriteTxnMarkersRequest, M.MarkerToken]]:
        out, self.sent = self.sent, []
        return out


LEADERS = {("a", 0): 1, ("a", 1): 2, ("b", 0): 1, ("gone", 0): 1, ("x", 0): -1, ("y", 0): 3}


def test_partitions_are_grouped_by_leader_deleted_and_leaderless_apart():
    img = image({k: v for k, v in LEADERS.items() if k[0] != "gone"}, fenced=(3,))
    tps = [TopicPartition(*k) for k in LEADERS]
    by_leader, deleted, leaderless = M.group_by_leader(tps, img)
    assert by_leader == {1: [TopicPartition("a", 0), TopicPartition("b", 0)],
                         2: [TopicPartition("a", 1)]}
    assert deleted == [TopicPartition("gone", 0)]
    assert leaderless == [TopicPartition("x", 0), TopicPartition("y", 0)]  # -1, fenced


def test_classify_and_answers():
    assert [M.classify(c) for c in (E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION,
                                    E.INVALID_PRODUCER_EPOCH)] == [M.DONE] * 3
    assert M.classify(E.TRANSACTION_COORDINATOR_FENCED) == M.FENCED
    for code in (E.NOT_LEADER_OR_FOLLOWER, E.REQUEST_TIMED_OUT, E.NOT_ENOUGH_REPLICAS,
                 E.UNKNOWN_SERVER_ERROR):
        assert M.classify(code) == M.RETRY
    e = effect(("a", 0), ("a", 1))
    tps = e.partitions
    assert M.answers(e, tps, None) == {tp: E.REQUEST_TIMED_OUT for tp in tps}
    refused = P.ErrorResponse(error_code=E.INVALID_REQUEST, error_message="not handled")
    assert M.answers(e, tps, refused) == {tp: E.INVALID_REQUEST for tp in tps}
    partial = answer(M.MarkerToken(e, 1, tps[:1]), E.NONE)
    assert M.answers(e, tps, partial) == {tps[0]: E.NONE, tps[1]: E.REQUEST_TIMED_OUT}
    other_producer = answer(M.MarkerToken(e, 1, tps), E.NONE, pid=8)
    assert M.answers(e, tps, other_producer) == {tp: E.REQUEST_TIMED_OUT for tp in tps}


def test_one_request_per_leader_then_complete_when_every_partition_answered():
    send = FakeSend()
    sender = M.MarkerSender(send, image(LEADERS))
    e = effect(("a", 0), ("a", 1), ("b", 0))
    assert sender.add(e, now_ms=0) == []
    sent = send.take()
    assert sorted(leader for leader, _, _ in sent) == [1, 2]
    leader1 = next(s for s in sent if s[0] == 1)
    marker = leader1[1].markers[0]
    assert (marker.producer_id, marker.producer_epoch, marker.transaction_result,
            marker.coordinator_epoch) == (7, 3, True, 5)
    assert [(t.name, t.partitions) for t in marker.topics] == [("a", (0,)), ("b", (0,))]
    assert sender.add(e, now_ms=0) == [] and send.take() == []  # already pending
    first, second = sorted(sent, key=lambda s: s[0])
    assert sender.on_response(first[2], answer(first[2], E.NONE), 1) == ([], [])
    assert sender.on_response(second[2], answer(second[2], E.NONE), 1) == ([e], [])
    assert sender.pending == {}


def test_not_leader_is_retried_with_backoff_and_at_once_when_the_leader_moves():
    send = FakeSend()
    leaders = dict(LEADERS)
    sender = M.MarkerSender(send, image(leaders))
    e = effect(("a", 1))
    sender.add(e, now_ms=1000)
    [(_, _, token)] = send.take()
    sender.on_response(token, answer(token, E.NOT_LEADER_OR_FOLLOWER), 1000)
    assert send.take() == []  # not at once: the image still names broker 2
    assert sender.poll(1000 + M.RETRY_BACKOFF_MS - 1) == [] and send.take() == []
    sender.poll(1000 + M.RETRY_BACKOFF_MS)
    [(leader, _, token)] = send.take()
    assert leader == 2
    sender.on_response(token, None, 1100)  # no answer (timeout): backoff doubled
    sender.poll(1100 + M.RETRY_BACKOFF_MS)
    assert send.take() == []
    leaders[("a", 1)] = 3
    assert sender.on_image(image(leaders), 1150) == []  # the leader moved: at once, to 3
    [(leader, _, token)] = send.take()
    assert leader == 3
    assert sender.on_response(token, answer(token, E.NONE), 1160) == ([e], [])


def test_a_request_in_flight_is_not_sent_twice_and_backoff_is_capped():
    send = FakeSend()
    sender = M.MarkerSender(send, image(LEADERS))
    sender.add(effect(("a", 0)), now_ms=0)
    [(_, _, token)] = send.take()
    sender.poll(10**9)
    sender.on_image(image(LEADERS), 10**9)
    assert send.take() == []
    now = 0
    for _ in range(12):
        sender.on_response(token, None, now)
        now += M.RETRY_BACKOFF_MAX_MS
        sender.poll(now)
        [(_, _, token)] = send.take()  # never waits longer than the cap


def test_deleted_and_stale_partitions_are_done_leaderless_ones_wait():
    send = FakeSend()
    leaders = {k: v for k, v in LEADERS.items() if k[0] != "gone"}
    sender = M.MarkerSender(send, image(leaders))
    assert sender.add(effect(("gone", 0)), 0) == [effect(("gone", 0))]  # nothing to write
    e = effect(("a", 0), ("a", 1), ("x", 0))
    sender.add(e, 0)
    tokens = {leader: token for leader, _, token in send.take()}
    assert set(tokens) == {1, 2}  # x-0 has no leader: it waits
    assert sender.on_response(tokens[1], answer(tokens[1], E.INVALID_PRODUCER_EPOCH), 1) == (
        [], [])
    assert sender.on_response(tokens[2], answer(tokens[2], E.UNKNOWN_TOPIC_OR_PARTITION),
                              1) == ([], [])
    sender.on_image(image(leaders), 2)
    assert send.take() == []  # still no leader: it waits for its backoff
    leaders[("x", 0)] = 2
    sender.on_image(image(leaders), 3)  # elected: sent at once
    [(leader, _, token)] = send.take()
    assert leader == 2
    assert sender.on_response(token, answer(token, E.NONE), 200) == ([e], [])


def test_a_fenced_coordinator_drops_the_whole_effect():
    send = FakeSend()
    sender = M.MarkerSender(send, image(LEADERS))
    e = effect(("a", 0), ("a", 1), commit=False)
    sender.add(e, 0)
    tokens = {leader: token for leader, _, token in send.take()}
    assert sender.on_response(tokens[1], answer(tokens[1], E.TRANSACTION_COORDINATOR_FENCED),
                              1) == ([], [e])
    assert sender.pending == {}
    assert sender.on_response(tokens[2], answer(tokens[2], E.NONE), 2) == ([], [])  # late
    assert sender.poll(10**9) == [] and send.take() == []


def test_drop_all_forgets_everything():
    send = FakeSend()
    sender = M.MarkerSender(send, image(LEADERS))
    sender.add(effect(("a", 0)), 0)
    [(_, _, token)] = send.take()
    sender.drop_all()
    assert sender.on_response(token, answer(token, E.NONE), 1) == ([], [])
