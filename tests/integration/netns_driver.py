"""The client side of a network-partition test, run inside the clients' network namespace.

    ip netns exec NS python tests/integration/netns_driver.py

It reads one JSON command per line on stdin and answers each with one JSON line on stdout
(logs go to stderr). The test process lives in the root namespace and cannot reach the
brokers' addresses, so every client action goes through here:

- ``{"op": "metadata", "via": [ADDR...], "topics": [NAME...] | null}``: the first broker that
  answers: ``{"via", "controller_id", "brokers": [ID...], "topics": {NAME: {P: {"leader",
  "leader_epoch", "isr", "replicas"}}}}``, or ``{"error"}`` if none did.
- ``{"op": "create_topic", "bootstrap", "name", "partitions", "rf", "configs"}``.
- ``{"op": "produce_start", "bootstrap", "topic", "partitions"}``: a producer thread (acks=all,
  idempotent) writes unique numbered values round-robin over the partitions.
- ``{"op": "acks", "since": MONOTONIC_S}``: ``{"acked": {P: N}, "errors": {TYPE: N},
  "acks_since": N}`` (acknowledgements that arrived after ``since``; the clock is
  CLOCK_MONOTONIC, which every namespace shares).
- ``{"op": "produce_stop"}``: flush, close; ``{"sends": [[VALUE, P, OUTCOME, OFFSET]...]}``.
- ``{"op": "read_all", "address", "topic", "partition"}``: every value in the log, in order.
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

from rillet.logstore.batch import records
from rillet.transport import protocol as P
from rillet.transport.endpoint import ClientEndpoint

from rillet import Admin, NewTopic, Producer
from rillet.errors import TopicAlreadyExistsError


class Driver:
    def __init__(self) -> None:
        self.endpoint = ClientEndpoint()
        self.lock = threading.Lock()
        self.sends: dict[str, list] = {}  # value -> [value, partition, outcome, offset]
        self.acked: Counter = Counter()
        self.errors: Counter = Counter()
        self.ack_times: list[float] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.producer: Producer | None = None

    def call(self, address: str, request, timeout_ms: int = 2000):
        try:
            return self.endpoint.request(address, request, timeout_ms).result(timeout_ms / 1000 + 2)
        except Exception:  # noqa: BLE001 - unreachable or slow: the test polls again
            return None

    def op_metadata(self, via: list[str], topics=None, timeout_ms: int = 1500) -> dict:
        request = P.MetadataRequest(topics=None if topics is None else tuple(topics))
        for address in via:
            m = self.call(address, request, timeout_ms)
            if m is None:
                continue
            return {
                "via": address,
                "controller_id": m.controller_id,
                "brokers": sorted(b.broker_id for b in m.brokers),
                "topics": {
                    t.name: {
                        str(p.partition): {
                            "leader": p.leader,
                            "leader_epoch": p.leader_epoch,
                            "isr": sorted(p.isr),
                            "replicas": sorted(p.replicas),
                        }
                        for p in t.partitions
                    }
                    for t in m.topics
                    if t.error_code == 0
                },
            }
        return {"error": "no broker answered"}

    def op_create_topic(self, bootstrap, name, partitions, rf, configs) -> dict:
        with Admin({"bootstrap.servers": bootstrap, "request.timeout.ms": 15000}) as admin:
            try:
                admin.create_topics([NewTopic(name, partitions, rf, configs=configs)])
            except TopicAlreadyExistsError:
                pass  # a retried create that went through
        return {}

    def op_produce_start(self, bootstrap: str, topic: str, partitions: int) -> dict:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "request.timeout.ms": 4000,
                "delivery.timeout.ms": 300_000,
            }
        )

        def produce() -> None:
            i = 0
            while not self.stop.is_set():
                for partition in range(partitions):
                    value = f"p{partition}-{i:07d}"
                    with self.lock:
                        self.sends[value] = [value, partition, None, None]
                    future = self.producer.send(topic, value.encode(), partition=partition)
                    future.add_done_callback(lambda f, v=value, p=partition: self._done(f, v, p))
                i += 1
                self.stop.wait(0.01)  # pacing: ~100 records/s per partition

        self.thread = threading.Thread(target=produce, daemon=True)
        self.thread.start()
        return {}

    def _done(self, future, value: str, partition: int) -> None:
        with self.lock:
            try:
                offset = future.get(0).offset
                self.sends[value][2:] = ["ok", offset]
                self.acked[partition] += 1
                self.ack_times.append(time.monotonic())
            except Exception as e:  # noqa: BLE001 - indeterminate: may have landed
                self.sends[value][2] = "info"
                self.errors[type(e).__name__] += 1

    def op_acks(self, since: float = 0.0) -> dict:
        with self.lock:
            return {
                "acked": {str(k): v for k, v in self.acked.items()},
                "errors": dict(self.errors),
                "acks_since": sum(1 for t in self.ack_times if t > since),
            }

    def op_produce_stop(self) -> dict:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
        error = None
        if self.producer is not None:
            try:
                self.producer.flush(200)
            except Exception as e:  # noqa: BLE001 - reported, the history still counts
                error = repr(e)
            self.producer.close(10)
        with self.lock:
            return {"sends": list(self.sends.values()), "flush_error": error}

    def op_read_all(self, address: str, topic: str, partition: int) -> dict:
        out: list[str] = []
        offset = 0
        while True:
            part = P.FetchPartition(partition=partition, fetch_offset=offset)
            request = P.FetchRequest(
                max_wait_ms=0, topics=(P.FetchTopic(name=topic, partitions=(part,)),)
            )
            response = self.call(address, request, 10_000)
            if response is None:
                return {"error": f"no fetch answer from {address}"}
            got_part = response.topics[0].partitions[0]
            if got_part.error_code != 0:
                return {"error": f"fetch error {got_part.error_code}"}
            got = [r for r in records(got_part.records) if r.offset >= offset]
            if not got:
                return {"values": out}
            out.extend(r.value.decode() for r in got)
            offset = got[-1].offset + 1


def main() -> int:
    driver = Driver()
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        if op == "quit":
            break
        try:
            result = getattr(driver, f"op_{op}")(**command)
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails with it
            result = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    driver.endpoint.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
