"""Produce ten keyed records and read them back: the Python half of the README's tour.

Run it against the cluster ``rillet cluster up`` started (the client finds it through the
profile that command writes, or through ``$RILLET_BROKERS``)::

    python examples/quickstart.py
"""

from __future__ import annotations

import sys

from rillet import Admin, Consumer, NewTopic, Producer, TopicPartition


def main(topic: str = "quickstart") -> int:
    admin = Admin()  # bootstrap.servers: $RILLET_BROKERS, else the `cluster up` profile
    if topic not in admin.list_topics():
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    admin.close()

    with Producer(linger_ms=5) as producer:
        futures = [
            producer.send(topic, f"order {i}".encode(), key=f"customer-{i % 3}".encode())
            for i in range(10)
        ]
        producer.flush()
        for future in futures[:3]:
            meta = future.get(timeout=10)
            print(f"sent to {meta.topic}[{meta.partition}] at offset {meta.offset}")

    consumer = Consumer(auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, p) for p in range(3)])
    seen = 0
    while seen < 10:
        for tp, records in consumer.poll(timeout_ms=2000).items():
            for r in records:
                seen += 1
                print(f"{tp.topic}[{tp.partition}]@{r.offset} {r.key.decode()}: {r.value.decode()}")
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
