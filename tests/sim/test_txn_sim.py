"""Seeded simulation of transactions over the shipped cores (tests/sim/txn_harness.py).

Transactional producers (shared ids fencing each other, zombies, dead instances), a
transaction coordinator that crashes and reloads by replay, partitions that crash and reopen
from their files, a lossy, reordering, duplicating network. The invariants (atomicity,
fencing, replay == live, no hanging transaction, read_committed == the committed records in
order) are checked after every step and at the end of each seed; a failing seed raises with
its trace and ``python -m tests.sim.txn_harness SEED`` replays it.
"""

from __future__ import annotations

from collections import Counter

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
        "marker refused: INVALID_PRODUCER_EPOCH",  # late copies of markers
    ):
        assert total[what] > 0, f"no {what!r} in 40 seeds: {dict(total)}"


@pytest.mark.timeout(60)
def test_without_faults_every_transaction_the_clients_end_is_decided_their_way() -> None:
    sim = run_seed(7, SimConfig(faults=False, loss=0.0, dup=0.0, slow=0.0))
    assert sim.claims and len(sim.decided) == len(sim.claims)
    assert sim.stats["timed out transactions aborted"] == 0


# A deliberately broken world must fail: the checks are not vacuous. (Seeds found by search;
# each variant fails on many seeds.)
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("variant", "seed", "caught"),
    [
        ("no-verify", 5, "appended after its transaction completed"),
        ("reader-ignores-index", 0, "not committed"),
        ("no-resend-on-load", 0, "not settled"),
        ("ack-before-fsync", 11, "committed 4"),
    ],
)
def test_a_broken_world_is_caught(variant: str, seed: int, caught: str) -> None:
    with pytest.raises(InvariantViolation, match=caught) as info:
        run_seed(seed, SimConfig(variant=variant))
    assert f"replay: python -m tests.sim.txn_harness {seed}" in str(info.value)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_many_seeds() -> None:
    for seed in range(200, 3000):
        run_seed(seed)
