"""The transactional producer's state machine (rillet/_txn.py): every call in every state,
fatal versus abortable errors, the partitions a transaction must add, the transition table."""

from __future__ import annotations

import itertools

import pytest

from rillet._txn import TRANSITIONS, IllegalTransition, TransactionManager, TxnState
from rillet.errors import (
    InvalidTxnStateError,
    OutOfOrderSequenceError,
    ProducerFencedError,
    TransactionAbortableError,
    TransactionTimeoutError,
)

S = TxnState
ITS = InvalidTxnStateError
TAE = TransactionAbortableError
FENCED = ProducerFencedError("fenced by a newer instance")


def at(state: TxnState) -> TransactionManager:
    """A manager brought to ``state`` through legal calls only."""
    tm = TransactionManager("app-1", 60000)
    path = {
        S.UNINITIALIZED: [],
        S.INITIALIZING: ["init"],
        S.READY: ["init", "init_done"],
        S.IN_TRANSACTION: ["init", "init_done", "begin"],
        S.COMMITTING: ["init", "init_done", "begin", "commit"],
        S.ABORTING: ["init", "init_done", "begin", "abort"],
        S.ABORTABLE_ERROR: ["init", "init_done", "begin", "abortable"],
        S.FATAL_ERROR: ["init", "init_done", "begin", "fatal"],
    }[state]
    for step in path:
        STEPS[step](tm)
    assert tm.state is state
    return tm


STEPS = {
    "init": lambda tm: tm.start_init(),
    "init_done": lambda tm: tm.init_done(7, 0),
    "begin": lambda tm: tm.begin(1000),
    "send": lambda tm: tm.check_in_transaction("send()"),
    "commit": lambda tm: tm.start_commit(),
    "abort": lambda tm: tm.start_abort(),
    "abortable": lambda tm: tm.abortable(OutOfOrderSequenceError("gap")),
    "fatal": lambda tm: tm.fatal(FENCED),
}

CALLS = ("init", "begin", "send", "commit", "abort")

# state -> the outcome of each application call: the new state, or the exception raised
# (the state then stays as it was)
EXPECTED = {
    S.UNINITIALIZED: {"init": S.INITIALIZING, "begin": ITS, "send": ITS, "commit": ITS,
                      "abort": ITS},
    # a repeated call resumes the one that timed out
    S.INITIALIZING: {"init": S.INITIALIZING, "begin": ITS, "send": ITS, "commit": ITS,
                     "abort": ITS},
    S.READY: {"init": ITS, "begin": S.IN_TRANSACTION, "send": ITS, "commit": ITS,
              "abort": ITS},
    S.IN_TRANSACTION: {"init": ITS, "begin": ITS, "send": S.IN_TRANSACTION,
                       "commit": S.COMMITTING, "abort": S.ABORTING},
    S.COMMITTING: {"init": ITS, "begin": ITS, "send": ITS, "commit": S.COMMITTING,
                   "abort": ITS},
    S.ABORTING: {"init": ITS, "begin": ITS, "send": ITS, "commit": ITS,
                 "abort": S.ABORTING},
    # only abort_transaction() is allowed after an abortable error
    S.ABORTABLE_ERROR: {"init": TAE, "begin": TAE, "send": TAE, "commit": TAE,
                        "abort": S.ABORTING},
    # every call raises the fatal error itself
    S.FATAL_ERROR: dict.fromkeys(CALLS, ProducerFencedError),
}


@pytest.mark.parametrize(("state", "call"), list(itertools.product(TxnState, CALLS)),
                         ids=lambda v: getattr(v, "name", v))
def test_every_call_in_every_state(state: TxnState, call: str) -> None:
    tm = at(state)
    expected = EXPECTED[state][call]
    if isinstance(expected, TxnState):
        STEPS[call](tm)
        assert tm.state is expected
    else:
        with pytest.raises(expected) as info:
            STEPS[call](tm)
        assert tm.state is state  # a refused call changes nothing
        if state is S.FATAL_ERROR:
            assert info.value is FENCED
        if state is S.ABORTABLE_ERROR:
            assert isinstance(info.value.__cause__, OutOfOrderSequenceError)


def test_refusals_say_what_to_do() -> None:
    with pytest.raises(ITS, match="call init_transactions\\(\\) first"):
        at(S.UNINITIALIZED).start_commit()
    with pytest.raises(ITS, match="call begin_transaction\\(\\) first"):
        at(S.READY).check_in_transaction("send()")
    with pytest.raises(ITS, match="already in progress"):
        at(S.IN_TRANSACTION).begin(0)
    with pytest.raises(ITS, match="already called"):
        at(S.READY).start_init()
    with pytest.raises(TAE, match="must be aborted"):
        at(S.ABORTABLE_ERROR).start_commit()


def test_a_full_cycle_takes_the_pair_the_coordinator_gives() -> None:
    tm = at(S.IN_TRANSACTION)
    assert (tm.producer_id, tm.producer_epoch) == (7, 0)
    tm.start_commit()
    tm.end_done(7, 1)
    assert tm.state is S.READY and (tm.producer_id, tm.producer_epoch) == (7, 1)
    tm.begin(2000)
    tm.start_abort()
    tm.end_done(-1, -1)  # nothing was ended at the coordinator: the pair stays
    assert tm.state is S.READY and (tm.producer_id, tm.producer_epoch) == (7, 1)


@pytest.mark.parametrize("state", [S.IN_TRANSACTION, S.COMMITTING])
def test_an_abortable_error_needs_an_abort_then_the_producer_goes_on(state) -> None:
    tm = at(state)
    tm.abortable(OutOfOrderSequenceError("gap"))
    assert tm.state is S.ABORTABLE_ERROR and tm.has_error
    tm.abortable(ValueError("second"))  # the first error stays the one reported
    assert isinstance(tm.error, OutOfOrderSequenceError)
    tm.start_abort()
    tm.end_done(7, 1)
    tm.begin(0)
    assert tm.state is S.IN_TRANSACTION and tm.error is not None  # (kept for the record)


def test_an_abortable_error_while_aborting_is_ignored() -> None:
    tm = at(S.ABORTING)
    tm.abortable(OutOfOrderSequenceError("late batch"))
    assert tm.state is S.ABORTING


@pytest.mark.parametrize("state", list(TxnState))
def test_a_fatal_error_is_reachable_from_every_state_and_final(state) -> None:
    tm = at(state)
    first = FENCED if state is not S.FATAL_ERROR else tm.error
    tm.fatal(FENCED)
    tm.fatal(ValueError("later"))
    assert tm.state is S.FATAL_ERROR and tm.error is first
    tm.abortable(ValueError("ignored"))
    assert tm.state is S.FATAL_ERROR
    with pytest.raises(ProducerFencedError):
        tm.check_usable()


@pytest.mark.parametrize(("old", "new"), list(itertools.product(TxnState, TxnState)),
                         ids=lambda s: s.name)
def test_the_transition_table_is_enforced(old: TxnState, new: TxnState) -> None:
    tm = TransactionManager("t", 1000)
    tm.state = old
    if old in TRANSITIONS[new]:
        tm._to(new)
        assert tm.state is new
    else:
        with pytest.raises(IllegalTransition):
            tm._to(new)
        assert tm.state is old


def test_partitions_join_once_and_only_in_an_open_or_committing_transaction() -> None:
    tm = at(S.READY)
    assert tm.partitions_to_add({("t", 0)}) == [] and not tm.needs_end_txn
    tm.begin(0)
    assert tm.partitions_to_add({("t", 1), ("t", 0)}) == [("t", 0), ("t", 1)]
    assert tm.needs_end_txn  # sent (answered or not): the coordinator may know it
    assert tm.partitions_to_add({("t", 0), ("t", 1)}) == []  # pending
    tm.partitions_added([("t", 0)])
    tm.partitions_not_added([("t", 1)])  # a retriable failure: ask again
    assert tm.is_added(("t", 0)) and not tm.is_added(("t", 1))
    assert tm.partitions_to_add({("t", 0), ("t", 1), ("u", 0)}) == [("t", 1), ("u", 0)]
    tm.start_commit()
    assert tm.partitions_to_add({("v", 0)}) == [("v", 0)]  # commit flushes: still joins
    tm.end_done(7, 1)
    assert not tm.added and not tm.pending and not tm.needs_end_txn
    assert tm.partitions_to_add({("t", 0)}) == []  # READY again


def test_offsets_alone_need_an_end_txn() -> None:
    tm = at(S.IN_TRANSACTION)
    assert not tm.needs_end_txn
    tm.offsets_adding()
    assert tm.needs_end_txn


def test_a_fencing_after_the_transaction_timeout_is_reported_as_the_timeout() -> None:
    tm = TransactionManager("t", transaction_timeout_ms=1000)
    tm.start_init()
    tm.init_done(1, 0)
    tm.begin(now_ms=5000)
    assert tm.fenced_error(FENCED, now_ms=5999) is FENCED
    error = tm.fenced_error(FENCED, now_ms=6000)
    assert isinstance(error, TransactionTimeoutError) and isinstance(error, ProducerFencedError)
    assert error.__cause__ is FENCED and "transaction.timeout.ms=1000" in str(error)
    assert tm.fenced_error(OutOfOrderSequenceError("x"), 9999).__class__ is OutOfOrderSequenceError


def test_the_fast_state_namespace_is_exactly_the_enum() -> None:
    """rillet._txn.S (plain attributes, read per record) names every TxnState member and
    nothing else, each the member itself: a state added to the enum but not to S (or a
    copy that is not the member) would make the ``is`` checks silently wrong."""
    from rillet import _txn

    names = {n for n in vars(_txn.S) if not n.startswith("_")}
    assert names == set(TxnState.__members__)
    for name, member in TxnState.__members__.items():
        assert getattr(_txn.S, name) is member
    assert _txn.IN_TRANSACTION is TxnState.IN_TRANSACTION
