"""Seeded simulation of transactions over the shipped cores (tests/sim/txn_harness.py).

Transactional producers (shared ids fencing each other, zombies, dead instances), a
transaction coordinator that crashes and reloads by replay, partitions that crash and reopen
from their files, a lossy, reordering, duplicating network. The invariants (atomicity,
fencing, replay == live, no hanging transaction, read_committed == the committed records in
order) are checked after every step and at the end of each seed; a failing seed raises with
its trace and ``python -m tests.sim.txn_harness SEED`` replays it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace

import pytest

from .txn_harness import InvariantViolation, SimConfig, run_seed


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", range(200))
def test_transactions_under_faults(seed: int) -> None:
    sim = run_seed(seed)
    assert sim.decided, "the seed decided no transaction"


@pytest.mark.timeout(60)
def test_the_faults_reach_the_cases_that_matter() -> None:
    """The schedule really produces what the invariants are about (over 40 seeds): else the
    seeds above would pass without testing much."""
    total: Counter[str] = Counter()
    for seed in range(40):
        total.update(run_seed(seed).summary())
    for what in (
        "commits",
        "aborts",
        "records read",
        "fenced instances",  # shared ids and zombies
        "zombies",
        "stray writes",
        "produce refused by verification: PRODUCER_FENCED",  # KIP-890 part 1
        "duplicate produce",  # retries deduplicated, across partition crashes too
        "timed out transactions aborted",
        "partition crashes",
        "coordinator crashes",
        "coordinator reloads",
        "__transaction_state append failed",
        "requests held for an id with uncommitted records",
        "unanswered records kept by a crash",
        "uncommitted records lost by a crash",
        "marker refused: INVALID_PRODUCER_EPOCH",  # late copies of markers
        "KIP-360 re-initialisations",
        "aborted-transaction indexes rebuilt at open",
    ):
        assert total[what] > 0, f"no {what!r} in 40 seeds: {dict(total)}"


@pytest.mark.timeout(60)
def test_transactions_across_producer_epoch_exhaustion() -> None:
    """The ids start at epoch 32760: a few bumps exhaust it, the coordinator takes a new
    producer id and writes the last transaction's markers as the old id at epoch 32767."""
    replaced = 0
    for seed in range(25):
        replaced += run_seed(seed, SimConfig(start_epoch=32_760)).summary()["producer ids replaced"]
    assert replaced > 0


@pytest.mark.timeout(60)
def test_transactional_ids_expire_and_come_back() -> None:
    """transactional.id.expiration.ms scaled down to 1.5 s: idle ids become tombstones
    (compaction keeps them), zombies of an expired id are refused, a new instance starts over
    with a new producer id."""
    total: Counter[str] = Counter()
    for seed in range(25):
        total.update(run_seed(seed, SimConfig(expiration_ms=1_500)).summary())
    assert total["transactional ids expired"] > 0 and total["producer ids replaced"] > 0


@pytest.mark.timeout(60)
def test_partitions_forgetting_idle_producers() -> None:
    """producer.id.expiration.ms scaled down to 0.3 s: partitions forget idle producers
    (never one with an open transaction), so late markers and zombie writes meet no state."""
    expired = 0
    for seed in range(25):
        sim = run_seed(seed, SimConfig(producer_expiration_ms=300))
        expired += sim.summary()["producer states expired"]
    assert expired > 0


@pytest.mark.timeout(60)
def test_replicated_partitions_fail_over() -> None:
    """A leader and a follower per partition (txn_replicas.py): the follower builds its
    transaction state from what it replicates, takes over when the leader dies, and the old
    leader truncates its divergent suffix (rebuilding its producer state when a cut marker
    reopens a transaction); the LSO never moves back across a failover."""
    total: Counter[str] = Counter()
    for seed in range(40):
        total.update(run_seed(seed, SimConfig(replicas=2)).summary())
    assert total["partition failovers"] > 0 and total["follower truncations"] > 0, total


@pytest.mark.timeout(60)
def test_without_faults_every_transaction_the_clients_end_is_decided_their_way() -> None:
    sim = run_seed(7, SimConfig(faults=False, loss=0.0, dup=0.0, slow=0.0))
    assert sim.claims and len(sim.decided) == len(sim.claims)
    assert sim.stats["timed out transactions aborted"] == 0


# A deliberately broken world must fail (the checks are not vacuous): the first failing seed
# (each variant fails on many) must fail for the reason the variant breaks.
CAUGHT = {
    # a stray zombie write lands where its transaction already ended, or hangs
    "no-verify": "appended after its transaction|a hanging transaction",
    "reader-ignores-index": "not committed",
    "no-resend-on-load": "a hanging transaction",
    # an acknowledged write lost in a crash: missing from the commit, or its producer's
    # next batch finds no state
    "ack-before-fsync": r"committed \d+ on .*, read|UNKNOWN_PRODUCER_ID|OUT_OF_ORDER",
    # a failover undoes what was answered or marked
    "uncommitted-reads": "hanging|joins the open data|decided|NOT_FOUND|INVALID_TXN_STATE",
    # replicated partitions answering before the follower has the write: a failover loses it
    "acks-1": r"committed \d+ on .*, read|LSO \d+ \(was|UNKNOWN_PRODUCER_ID|OUT_OF_ORDER",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", sorted(CAUGHT))
def test_a_broken_world_is_caught(variant: str) -> None:
    caught = CAUGHT[variant]
    for seed in range(300):
        try:
            run_seed(seed, SimConfig(variant=variant, replicas=2 if variant == "acks-1" else 1))
        except InvariantViolation as exc:
            first = str(exc).splitlines()[0]
            assert re.search(caught, first), first
            assert f"replay: python -m tests.sim.txn_harness {seed} {variant}" in str(exc)
            return
    pytest.fail(f"no seed caught the {variant!r} world")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_many_seeds() -> None:
    for seed in range(200, 3000):
        run_seed(seed)
    for seed in range(25, 300):
        run_seed(seed, SimConfig(start_epoch=32_760))
        run_seed(seed, SimConfig(expiration_ms=1_500))
        run_seed(seed, SimConfig(producer_expiration_ms=300))
        run_seed(seed, SimConfig(replicas=2))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_many_seeds_bigger_and_harsher() -> None:
    bigger = SimConfig(tids=5, partitions=6, txns=8, active_ms=12_000)
    for seed in range(300):
        run_seed(seed, replace(bigger, replicas=2, expiration_ms=1_500, producer_expiration_ms=300))
        run_seed(seed, replace(bigger, loss=0.15, dup=0.1, slow=0.1))
