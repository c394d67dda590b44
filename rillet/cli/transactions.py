"""``rillet transactions``: list, describe and abort transactions (the kafka-transactions.sh
tool, with its column names). See docs/transactions.md, "Administration"."""

from __future__ import annotations

import time

import click

from rillet.cli.topic import _admin, _table, admin_options


@click.group("transactions")
def transactions() -> None:
    """List, describe and abort (force-terminate) transactions."""


@transactions.command("list")
@click.option("--state", "states", multiple=True,
              help="Only transactional ids in this state (Empty, Ongoing, PrepareCommit, "
                   "PrepareAbort, CompleteCommit, CompleteAbort; repeatable).")
@click.option("--producer-id", "producer_ids", type=int, multiple=True,
              help="Only this producer id (repeatable).")
@click.option("--duration-filter", "min_duration_ms", type=click.IntRange(0), default=None,
              help="Only transactions open for at least this many ms (hanging ones).")
@admin_options
def list_(states, producer_ids, min_duration_ms, bootstrap, timeout_ms) -> None:
    """Every transactional id with its coordinator, producer id and state."""
    with _admin(bootstrap) as admin:
        found = admin.list_transactions(states or None, producer_ids or None, min_duration_ms)
    _table(["TransactionalId", "Coordinator", "ProducerId", "TransactionState"],
           [(t.transactional_id, t.coordinator_id, t.producer_id, t.state) for t in found])


@transactions.command("describe")
@click.option("--transactional-id", "transactional_id", required=True)
@admin_options
def describe(transactional_id, bootstrap, timeout_ms) -> None:
    """The coordinator's state of one transactional id."""
    with _admin(bootstrap) as admin:
        d = admin.describe_transactions([transactional_id])[transactional_id]
    started = d.transaction_start_time_ms
    duration = "None" if started < 0 else str(int(time.time() * 1000) - started)
    _table(["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch",
            "TransactionState", "TransactionTimeoutMs", "CurrentTransactionStartTimeMs",
            "TransactionDurationMs", "TopicPartitions"],
           [(d.coordinator_id, d.transactional_id, d.producer_id, d.producer_epoch, d.state,
             d.transaction_timeout_ms, "None" if started < 0 else started, duration,
             ",".join(f"{tp.topic}-{tp.partition}" for tp in d.partitions) or "None")])


@transactions.command("force-terminate")
@click.option("--transactional-id", "transactional_id", required=True)
@admin_options
def force_terminate(transactional_id, bootstrap, timeout_ms) -> None:
    """Fence the producer of this transactional id and abort its open transaction."""
    with _admin(bootstrap) as admin:
        admin.force_terminate_transaction(transactional_id)
    click.echo(f"Transaction of {transactional_id!r} terminated: its producer is fenced and "
               "an open transaction was aborted.")


@transactions.command("abort")
@click.option("--transactional-id", "transactional_id", required=True)
@admin_options
@click.pass_context
def abort(ctx, transactional_id, bootstrap, timeout_ms) -> None:
    """Abort the open transaction of this transactional id (as force-terminate)."""
    ctx.invoke(force_terminate, transactional_id=transactional_id, bootstrap=bootstrap,
               timeout_ms=timeout_ms)
