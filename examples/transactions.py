"""Exactly-once consume-transform-produce: read ``eos-input``, write the upper-cased values to
``eos-output`` and commit the input offsets in the same transaction.

Each transaction holds the output of a few input records and the consumer's position after
them; either both become visible (commit) or neither (abort). The second transaction here
fails on purpose: it is aborted, the consumer goes back to the last committed offsets and
the same records are processed again, and a read_committed reader of ``eos-output`` sees
every result exactly once.

Run it against the cluster ``rillet cluster up`` started (or ``$RILLET_BROKERS``)::

    python examples/transactions.py
"""

from __future__ import annotations

import sys

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition

INPUT, OUTPUT, GROUP = "eos-input", "eos-output", "eos-example"


def seed(n: int) -> None:
    with Admin() as admin:
        existing = admin.list_topics()
        admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)
                             for t in (INPUT, OUTPUT) if t not in existing])
    with Producer() as producer:
        for i in range(n):
            producer.send(INPUT, f"order {i}".encode(), key=f"customer-{i % 3}".encode())


def rewind(consumer: Consumer) -> None:
    """After an abort: back to the offsets of the last committed transaction."""
    assigned = consumer.assignment()
    for tp, offset in consumer.committed(assigned).items():
        if offset is None:
            consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, offset)


def transform(n: int, per_transaction: int = 4) -> None:
    consumer = Consumer(group_id=GROUP, auto_offset_reset="earliest",
                        enable_auto_commit=False, isolation_level="read_committed")
    producer = Producer(transactional_id="eos-example-1")
    consumer.subscribe([INPUT])
    producer.init_transactions()  # fences any older instance of "eos-example-1"
    done, number, failed_once = 0, 0, False
    while done < n:
        batch = consumer.poll(timeout_ms=1000, max_records=per_transaction)
        records = [r for rs in batch.values() for r in rs]
        if not records:
            continue
        number += 1
        producer.begin_transaction()
        try:
            for r in records:
                producer.send(OUTPUT, r.value.upper(), key=r.key)
            if number == 2 and not failed_once:
                failed_once = True
                raise RuntimeError("simulated failure")
            offsets = {tp: consumer.position(tp) for tp in batch}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
        except RuntimeError as exc:
            producer.abort_transaction()
            rewind(consumer)
            print(f"transaction {number}: {exc}, aborted; back to offset "
                  f"{consumer.position(TopicPartition(INPUT, 0))}")
            continue
        done += len(records)
        print(f"transaction {number}: {len(records)} records, input offsets committed up to "
              f"{offsets[TopicPartition(INPUT, 0)]}")
    producer.close()
    consumer.close()


def show() -> None:
    tp = TopicPartition(OUTPUT, 0)
    with Consumer(auto_offset_reset="earliest", isolation_level="read_committed") as reader:
        reader.assign([tp])
        end = reader.end_offsets([tp])[tp]  # read_committed: the last stable offset
        seen: list[str] = []
        while reader.position(tp) < end:
            for records in reader.poll(timeout_ms=1000).values():
                seen.extend(f"{r.key.decode()}: {r.value.decode()}" for r in records)
    print(f"{OUTPUT} (read_committed): {len(seen)} records, {len(set(seen))} distinct")
    for line in seen:
        print(f"  {line}")


def main(n: str = "10") -> int:
    count = int(n)
    seed(count)
    transform(count)
    show()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
