"""A fault run on real processes: producers writing unique values to 3 partitions of an RF=3
topic (min.insync.replicas=2, acks=all, idempotence on) while a test injects faults, then the
partitions drained from their leaders and the history checked (tests/history.py): 0 lost,
0 duplicates, order and acknowledged offsets right."""

from __future__ import annotations

import threading
from collections import Counter

from cluster_helpers import partition_meta, read_all, wait_until

from rillet import Admin, NewTopic, Producer
from rillet.errors import TopicAlreadyExistsError
from tests.history import History, check

TOPIC = "busy"


def _admin(c) -> Admin:
    return Admin({"bootstrap.servers": c.bootstrap_servers, "request.timeout.ms": 15000})


def create_topic(c, topic: str, partitions: int) -> None:
    """RF=3, min.insync.replicas=2. On a busy machine the admin client may retry a create
    that went through (its answer came too late): "already exists" is then success."""
    with _admin(c) as a:
        try:
            a.create_topics([NewTopic(topic, partitions, 3, configs={"min.insync.replicas": "2"})])
        except TopicAlreadyExistsError:
            pass


def leader_of(c, partition: int, exclude: int | None = None) -> int:
    def found():
        m = partition_meta(c, TOPIC, partition, [b for b in c.broker_ids if b != exclude])
        if m is None or m.leader < 0 or m.leader == exclude or c.pid(m.leader) is None:
            return None
        return m.leader

    return wait_until(found, 20, f"a leader for partition {partition}")


class ProduceRun:
    """Producer threads (one producer each) writing unique values to 3 partitions, recording
    the history. Several producers share the partitions: each has its own sequences."""

    def __init__(self, c, producers: int = 1) -> None:
        self.history = History()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.acked = Counter()  # partition -> acknowledged sends
        self.errors = Counter()  # exception type -> sends that ended with it
        config = {
            "bootstrap.servers": c.bootstrap_servers,
            "acks": "all",
            "linger.ms": 5,
            "request.timeout.ms": 4000,
            "delivery.timeout.ms": 120_000,
        }
        self.producers = [Producer(config) for _ in range(producers)]
        assert all(p._sender.idempotent for p in self.producers)
        self.threads = [
            threading.Thread(target=self._produce, args=(n,), daemon=True) for n in range(producers)
        ]
        for t in self.threads:
            t.start()

    def _produce(self, n: int) -> None:
        producer, name, i = self.producers[n], f"producer-{n}", 0
        while not self.stop.is_set():
            for partition in range(3):
                value = f"w{n}-p{partition}-{i:06d}".encode()
                with self.lock:
                    self.history.send(name, value, partition)
                future = producer.send(TOPIC, value, partition=partition)
                future.add_done_callback(
                    lambda f, value=value, partition=partition: self._done(f, value, partition)
                )
            i += 1
            # pace the writer (not a synchronisation): a few hundred records per second
            self.stop.wait(0.005)

    def _done(self, f, value: bytes, partition: int) -> None:
        with self.lock:
            try:
                self.history.ack(value, partition, f.get(0).offset)
                self.acked[partition] += 1
            except Exception as e:  # noqa: BLE001 - indeterminate: may have landed
                self.history.info(value)
                self.errors[type(e).__name__] += 1

    def wait_for_acks(self, partition: int, more: int, timeout_s: float, what: str) -> None:
        """Poll until ``more`` further sends to ``partition`` were acknowledged."""
        with self.lock:
            target = self.acked[partition] + more
        wait_until(lambda: self.acked[partition] >= target, timeout_s, what)

    def dump(self) -> str:
        lines = [f"acked={dict(self.acked)} errors={dict(self.errors)}"]
        for n, producer in enumerate(self.producers):
            snd = producer._sender
            lines += [
                f"producer-{n}: alive={snd.is_alive()} in_flight={dict(snd.in_flight)} "
                f"batches_in_flight={dict(snd.batches_in_flight)}",
                f"next_sequence={snd.next_sequence} epochs={snd.epochs} "
                f"unresolved={snd.unresolved} needs_bump={snd.needs_bump}",
                f"leaders={dict(snd.client.view.leaders)}",
            ]
            lines += [
                f"WAIT {b.topic}-{b.partition} seq={b.base_sequence} epoch={b.producer_epoch} "
                f"attempts={b.attempts} retry_at={b.retry_at_ms:.0f}"
                for b in list(snd.waiting)[:10]
            ]
            lines += [
                f"INC {b.topic}-{b.partition} seq={b.base_sequence} attempts={b.attempts}"
                for b in list(snd.incomplete)[:20]
            ]
        return "\n".join(lines)

    def finish(self) -> None:
        """Stop writing; wait until every send is answered (or dump the senders' state)."""
        self.stop.set()
        for t in self.threads:
            t.join(10)
        try:
            for producer in self.producers:
                producer.flush(150)
        except Exception:
            print("SENDER STATE\n" + self.dump())
            raise
        finally:
            for producer in self.producers:
                producer.close(10)


def drain_and_check(c, run: ProduceRun) -> None:
    """Read every partition from its leader into the history and check it: 0 lost, 0
    duplicates, order and acknowledged offsets right, no send failed."""
    history = run.history
    for partition in range(3):
        leader = leader_of(c, partition)
        for offset, value in enumerate_log(c, leader, partition):
            history.read("drain", partition, offset, value)
        history.drain(partition)
    report = check(history)
    print(f"acked={dict(run.acked)} errors={dict(run.errors)} {report.summary()}")
    assert report.ok, report.summary()
    assert not run.errors, f"sends failed: {dict(run.errors)}"


def enumerate_log(c, broker_id: int, partition: int):
    return list(enumerate(read_all(c, broker_id, TOPIC, partition)))
