"""An exactly-once stream processor: read ``input``, transform each record, write the result
to ``output`` and commit the input offsets in the same transaction (KIP-98 / KIP-447).

Kill it with ``kill -9`` at any moment and start it again: the new instance fences the old
one (same ``transactional.id``), its open transaction is aborted, and it resumes from the
offsets of the last committed transaction. A read_committed consumer of ``output`` sees
exactly one result per input record, in input order per key.

The transform: value ``v`` becomes ``v + b"|processed"`` (key kept; the output topic has as
many partitions as the input, so a key stays on one partition in order).

    python examples/eos/app.py --bootstrap HOST:PORT [--input eos-in] [--output eos-out]
        [--group eos-app] [--transactional-id eos-app-1] [--per-transaction 100]
        [--exit-when-idle SECONDS] [--work-ms MS]

It prints ``committed <n>`` after each committed transaction (n records so far in this run)
and exits 0 when ``--exit-when-idle`` seconds pass without input. ``--work-ms`` stands for
the application's own work: that long between writing a transaction's records and
committing it (the window in which a crash leaves an open transaction behind). It assigns itself every
input partition (one instance per transactional id; to scale out, run one per partition set
with its own transactional id), so a restart never waits for a group rebalance.
"""

from __future__ import annotations

import argparse
import sys
import time

from rillet import Consumer, Producer, TopicPartition
from rillet.errors import ProducerFencedError, RilletError, RilletTimeoutError


def rewind(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Back to the offsets of the last committed transaction."""
    for tp, offset in consumer.committed(partitions).items():
        if offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)


def commit(producer: Producer, deadline_s: float) -> None:
    """commit_transaction, resumed after a timeout (a broker or the coordinator may be
    moving) until ``deadline_s``."""
    while True:
        try:
            producer.commit_transaction(timeout=10)
            return
        except RilletTimeoutError:
            if time.monotonic() >= deadline_s:
                raise


def run(args: argparse.Namespace) -> int:
    common = {"bootstrap.servers": args.bootstrap, "request.timeout.ms": 10000}
    producer = Producer({**common, "transactional.id": args.transactional_id,
                         "transaction.timeout.ms": args.transaction_timeout_ms})
    consumer = Consumer({**common, "group.id": args.group, "enable.auto.commit": False,
                         "isolation.level": "read_committed",
                         "auto.offset.reset": "earliest"})
    try:
        while True:
            try:
                producer.init_transactions(timeout=30)  # fences older instances
                break
            except RilletTimeoutError:
                continue
        partitions = [TopicPartition(args.input, p)
                      for p in sorted(consumer.partitions_for_topic(args.input))]
        consumer.assign(partitions)
        rewind(consumer, partitions)
        done = 0
        idle_since = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=200, max_records=args.per_transaction)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                if args.exit_when_idle and time.monotonic() - idle_since > args.exit_when_idle:
                    return 0
                continue
            idle_since = time.monotonic()
            producer.begin_transaction()
            try:
                for r in records:
                    producer.send(args.output, r.value + b"|processed", key=r.key,
                                  partition=r.partition)
                offsets = {tp: consumer.position(tp) for tp in batch}
                producer.send_offsets_to_transaction(offsets, args.group)
                if args.work_ms:
                    producer.flush(30)  # the records are in the log, not yet committed
                    time.sleep(args.work_ms / 1000)
                commit(producer, time.monotonic() + 120)
            except ProducerFencedError:
                print("fenced by a newer instance: exiting", flush=True)
                return 3
            except RilletError as exc:  # abortable: abort, go back, process them again
                print(f"aborting: {type(exc).__name__}: {exc}", flush=True)
                try:
                    producer.abort_transaction(timeout=30)
                except ProducerFencedError:
                    return 3
                rewind(consumer, partitions)
                continue
            done += len(records)
            print(f"committed {done}", flush=True)
    finally:
        consumer.close()
        producer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", default="eos-in")
    parser.add_argument("--output", default="eos-out")
    parser.add_argument("--group", default="eos-app")
    parser.add_argument("--transactional-id", default="eos-app-1")
    parser.add_argument("--per-transaction", type=int, default=100)
    parser.add_argument("--transaction-timeout-ms", type=int, default=10000)
    parser.add_argument("--exit-when-idle", type=float, default=0.0)
    parser.add_argument("--work-ms", type=int, default=0)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
