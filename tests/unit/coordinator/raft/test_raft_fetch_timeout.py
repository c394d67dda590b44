"""KRaft's fetch timeout (controller.quorum.fetch.timeout.ms): a follower waits that long for
its leader before a pre-vote and trusts it that long; a leader resigns after 1.5 times it
without a majority. Elections keep the random election timeout."""

import pytest
from rillet.actors.configs import ConfigError, validate_broker_configs
from rillet.coordinator.raft import RaftConfig, VoteRequest, VoteResponse

from tests.sim.raft_harness import Harness

pytestmark = pytest.mark.timeout(30)

CONFIG = RaftConfig(election_timeout_ms=100, heartbeat_interval_ms=20, snapshot_threshold=0,
                    fetch_timeout_ms=500)


def silent_leader(h: Harness):
    """Node 1 leads, heard by all; then its messages stop (blocked)."""
    leader = h.elect(1)
    h.heartbeat()
    h.blocked.add(1)
    return leader


def test_a_follower_waits_the_fetch_timeout_not_an_election_timeout_before_its_pre_vote():
    h = Harness(3, config=CONFIG)
    silent_leader(h)
    follower = h.nodes[2]
    heard = h.now
    assert follower.next_tick_ms == heard + 500  # fixed, not a random [100, 200)
    h.advance(499)
    h.tick(2)
    assert follower.role == "follower"
    h.advance(1)
    h.tick(2)
    assert follower.role == "prospective" and follower.term == 1


def test_without_a_fetch_timeout_the_follower_gives_up_within_two_election_timeouts():
    h = Harness(3)  # fetch_timeout_ms None: the election timeout does everything
    silent_leader(h)
    follower = h.nodes[2]
    assert follower.next_tick_ms - h.now < 2 * h.config.election_timeout_ms
    h.timeout(2)
    assert follower.role == "prospective"


def test_the_lease_lasts_the_fetch_timeout():
    h = Harness(3, config=CONFIG)
    silent_leader(h)
    pre_vote = VoteRequest(src=3, dst=2, term=2, last_log_index=1, last_log_term=1,
                           pre_vote=True)
    h.advance(300)  # three election timeouts: the leader may still be alive
    (reply,) = [e.message for e in h.deliver(pre_vote) if hasattr(e, "message")]
    assert isinstance(reply, VoteResponse) and not reply.granted
    h.advance(200)  # the fetch timeout has passed since node 2 heard node 1
    (reply,) = [e.message for e in h.deliver(pre_vote) if hasattr(e, "message")]
    assert reply.granted


def test_check_quorum_waits_one_and_a_half_fetch_timeouts():
    h = Harness(3, config=CONFIG)
    leader = h.elect(1)
    h.heartbeat()
    h.blocked.update({2, 3})
    start = h.now
    while leader.is_leader and h.now - start < 2_000:
        h.advance(20)
        h.tick(1)
    assert leader.role == "resigned"
    # check-quorum runs every 750 ms and needs answers within the last 750: it resigns at
    # the first check at least 750 ms after the last answers, never before
    assert 750 <= h.now - start <= 1_500 + 20


def test_a_fetch_timeout_must_exceed_the_heartbeat_interval():
    with pytest.raises(ValueError, match="fetch_timeout_ms"):
        RaftConfig(election_timeout_ms=100, heartbeat_interval_ms=20, fetch_timeout_ms=20)


@pytest.mark.parametrize(("configs", "message"), [
    ({"controller.quorum.fetch.timeout.ms": "200"}, "above the Raft heartbeat interval"),
    ({"controller.quorum.election.timeout.ms": "10"}, "must be >= 20"),
    ({"controller.quorum.fetch.timout.ms": "2000"}, "controller.quorum.fetch.timeout.ms"),
])
def test_the_broker_refuses_quorum_timeouts_it_cannot_run(configs, message):
    with pytest.raises(ConfigError, match=message):
        validate_broker_configs(configs)


def test_the_broker_passes_kafkas_defaults_to_raft():
    merged = validate_broker_configs({})
    assert merged.int("controller.quorum.fetch.timeout.ms") == 2000
    assert merged.int("controller.quorum.election.timeout.ms") == 1000
