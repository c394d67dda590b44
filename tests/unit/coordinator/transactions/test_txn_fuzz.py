"""Random interleavings of two producer instances sharing a transactional.id, timeouts,
marker completions and reloads: the live state is always the replay of the records, a fenced
instance never gets a success, and no request crashes the core."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rillet.coordinator.transactions import TopicPartition, TransactionCoordinator, TxnState

from .test_txn_coordinator import Harness

pytestmark = pytest.mark.timeout(60)

tps = st.lists(
    st.builds(TopicPartition, st.sampled_from(["a", "b", ""]), st.integers(-1, 2)), max_size=3
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("init"), st.integers(0, 1), st.integers(-1, 1_000_000)),
        st.tuples(st.just("add"), st.integers(0, 1), tps),
        st.tuples(st.just("end"), st.integers(0, 1), st.booleans()),
        st.tuples(st.just("markers"), st.integers(0, 3)),
        st.tuples(st.just("tick"), st.integers(0, 120_000)),
        st.tuples(st.just("reload")),
    ),
    min_size=4,
    max_size=40,
)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_random_interleavings_keep_the_rules(ops) -> None:
    h = Harness()
    now = 1_000_000
    instances: list[tuple[int, int] | None] = [None, None]  # (producer id, epoch) each holds
    pending = []  # marker effects not yet completed
    for op in ops:
        kind = op[0]
        if kind == "init":
            r = h.init(timeout=op[2], now=now)
            if r.response.error == "NONE":
                instances[op[1]] = (r.response.producer_id, r.response.producer_epoch)
            pending.extend(r.effects)
        elif kind in ("add", "end") and instances[op[1]] is not None:
            pid, epoch = instances[op[1]]
            current = h.c.transactions.get("app")
            fenced = (
                current is not None
                and (pid, epoch) < (current.producer_id, current.producer_epoch)
                and pid == current.producer_id
            )
            if kind == "add":
                r = h.add(pid, epoch, op[2], now=now)
            else:
                r = h.end(pid, epoch, op[2], now=now)
                pending.extend(r.effects)
                retry = current is not None and (pid, epoch) == (
                    current.last_producer_id,
                    current.last_producer_epoch,
                )
                if r.response.error == "NONE":
                    instances[op[1]] = (r.response.producer_id, r.response.producer_epoch)
                fenced = fenced and not retry
            if fenced:
                assert r.response.error != "NONE", (op, current)
        elif kind == "markers" and pending:
            effect = pending.pop(op[1] % len(pending))
            h.done(effect, now=now)
        elif kind == "tick":
            now += op[1]
            r = h.run(h.c.abort_timed_out(now, h.allocate))
            pending.extend(r.effects)
        elif kind == "reload":
            c, effects = TransactionCoordinator.load(h.log, coordinator_epoch=4)
            assert c.transactions == h.c.transactions
            preparing = {
                tid
                for tid, m in c.transactions.items()
                if m.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)
            }
            assert {e.transactional_id for e in effects} == preparing
            pending = list(dict.fromkeys([*pending, *effects]))
            h.c = c
        m = h.c.transactions.get("app")
        if m is not None:
            assert (m.state is TxnState.ONGOING) == bool(m.partitions) or m.state in (
                TxnState.PREPARE_COMMIT,
                TxnState.PREPARE_ABORT,
            )
            if m.state is TxnState.ONGOING:
                assert m.txn_start_ms >= 0
