"""controller_mutation_rate's token bucket and strict/permissive admission
(coordinator/mutation_quota.py), against Kafka's arithmetic (TokenBucket,
Strict/PermissiveControllerMutationQuota)."""

from __future__ import annotations

import pytest
from rillet.coordinator import mutation_quota as M
from rillet.coordinator import quotas as Q


def test_the_docstrings_worked_example() -> None:
    b = M.TokenBucket()
    # rate 5/s, 3 windows of 1 s: a full bucket of 10; 15 partitions admitted
    first = M.admit(b, 5, 3, 1, 0, [15], strict=True)
    assert first == M.Admission((True,), 0)
    assert b.tokens == -5
    second = M.admit(b, 5, 3, 1, 0, [1], strict=True)
    assert second == M.Admission((False,), 1000)  # 5 tokens short at 5/s
    assert M.admit(b, 5, 3, 1, 999, [1], strict=True).admitted == (False,)
    assert M.admit(b, 5, 3, 1, 1000, [1], strict=True) == M.Admission((True,), 0)


def test_strict_refuses_every_topic_after_the_first_refusal() -> None:
    b = M.TokenBucket()
    got = M.admit(b, 2, 11, 1, 0, [15, 10, 1, 0], strict=True)  # burst 20
    # 15 (tokens 20 -> 5), 10 (5 >= 0: admitted, -> -5), 1 refused, then all refused
    assert got.admitted == (True, True, False, False)
    assert got.throttle_ms == 2500
    assert b.tokens == -5  # the refused ones took nothing


def test_permissive_admits_all_and_says_how_long_to_wait() -> None:
    b = M.TokenBucket()
    got = M.admit(b, 2, 11, 1, 0, [15, 10, 1], strict=False)
    assert got == M.Admission((True, True, True), 3000)  # 20 - 26 = -6 at 2/s


def test_the_bucket_refills_at_the_rate_and_never_beyond_its_burst() -> None:
    b = M.TokenBucket()
    b.record(30, 10, 20, 0)
    assert b.measure(10, 20, 0) == -10
    assert b.measure(10, 20, 1500) == pytest.approx(5)
    assert b.measure(10, 20, 60_000) == 20


def test_controller_mutation_rate_is_a_quota_key_and_may_be_fractional() -> None:
    assert Q.validate_value(Q.CONTROLLER_MUTATION_RATE, 0.5) == 0.5
    with pytest.raises(Q.QuotaError, match="positive"):
        Q.validate_value(Q.CONTROLLER_MUTATION_RATE, 0)
    with pytest.raises(Q.QuotaError, match="whole number"):
        Q.validate_value(Q.PRODUCER_BYTE_RATE, 0.5)
    applied = Q.resolve({((Q.USER, None),): {Q.CONTROLLER_MUTATION_RATE: 3.0}}, "alice", "",
                        Q.CONTROLLER_MUTATION_RATE)
    assert applied is not None and applied.bound == 3.0 and applied.user_tag == "alice"
